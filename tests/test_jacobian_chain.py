"""rnnviz.gradients' Jacobian chain and gradient map against independent references:
torch.autograd.functional.jacobian + torch.linalg.matrix_norm for the chain (exact SVD and the block
Krylov estimate), float64 for float32's range, and single-loss norm curves for the map's rows."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from rnnviz import trace
from rnnviz.gradients import (MAP_MAX_STEPS, GradientError, WhatIf, fit_rate, gradient_map,
                              jacobian_chain, norm_curve, plan_map_rows)
from rnnviz.names import act_name
from tests.conftest import SMALL_TEXT, tiny_model
from tests.grad_reference import CELL_LAYERS, F64, TEXT


# ----------------------------------------------------------------------------- Jacobian chain
@pytest.mark.parametrize("cell,layers", CELL_LAYERS)
def test_jacobian_chain_matches_explicit_jacobians(cell, layers):
    model = tiny_model(cell, layers)
    end = 9
    ch = jacobian_chain(model, TEXT, end=end, layer=layers - 1, dtype=F64)
    m = copy.deepcopy(model).double()
    tr = trace(m, TEXT)
    lay = m.layers[layers - 1]
    x = (tr[act_name(layers - 2, "h")] if layers > 1 else m.one_hot(tr.ids)).clone()
    for t in range(end):
        h0 = tr[act_name(layers - 1, "h")][t].clone()
        c0 = tr[act_name(layers - 1, "c")][t].clone() if cell == "lstm" else None

        def f_h(hh):
            out, _ = lay(x[t + 1:end + 1], (hh[None], c0[None]) if cell == "lstm" else hh[None])
            return out[-1]

        J = torch.autograd.functional.jacobian(f_h, h0)
        assert 10 ** float(ch.log10_spectral[t]) == pytest.approx(float(torch.linalg.matrix_norm(J, 2)), rel=1e-10)
        assert 10 ** float(ch.log10_frobenius[t]) == pytest.approx(float(torch.linalg.matrix_norm(J)), rel=1e-10)
        if cell == "lstm":
            def f_c(cc):
                out, _ = lay(x[t + 1:end + 1], (h0[None], cc[None]))
                return out[-1]

            Jc = torch.autograd.functional.jacobian(f_c, c0)
            assert 10 ** float(ch.log10_spectral_c[t]) == pytest.approx(float(torch.linalg.matrix_norm(Jc, 2)), rel=1e-10)
            assert 10 ** float(ch.log10_frobenius_c[t]) == pytest.approx(float(torch.linalg.matrix_norm(Jc)), rel=1e-10)
    assert ch.method == "exact SVD"
    assert list(ch.distance) == [end - t for t in range(end)]


@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm"))
def test_jacobian_chain_block_krylov_matches_svd(cell):
    model = tiny_model(cell, 1, hidden=40)
    text = (SMALL_TEXT * 3)[:120]
    exact = jacobian_chain(model, text, exact=True, dtype=F64)
    fast = jacobian_chain(model, text, exact=False, dtype=F64)
    assert "Krylov" in fast.method
    torch.testing.assert_close(fast.log10_spectral, exact.log10_spectral, rtol=0, atol=1e-7)
    torch.testing.assert_close(fast.log10_frobenius, exact.log10_frobenius)
    if cell == "lstm":
        torch.testing.assert_close(fast.log10_spectral_c, exact.log10_spectral_c, rtol=0, atol=1e-7)
    # float32 (what the page uses) within float32 accuracy of the exact float64 answer
    f32 = jacobian_chain(model, text, exact=False)
    torch.testing.assert_close(f32.log10_spectral, exact.log10_spectral, rtol=0, atol=1e-5)


def test_block_krylov_handles_invariant_subspaces():
    """A diagonal (or low-rank) matrix makes the Krylov space invariant: no fake directions."""
    from rnnviz.gradients import _SpectralBatch
    g = torch.Generator().manual_seed(1)
    d = torch.rand(3, 30, generator=g, dtype=F64)
    M = torch.diag_embed(d)
    low = torch.randn(2, 30, 2, generator=g, dtype=F64) @ torch.randn(2, 2, 30, generator=g, dtype=F64)
    for mats in (M, low, torch.randn(4, 30, 30, generator=g, dtype=F64)):
        sb = _SpectralBatch(30, F64, exact=False)
        torch.testing.assert_close(sb(mats), torch.linalg.matrix_norm(mats, ord=2), rtol=1e-9, atol=0)


def test_jacobian_chain_does_not_underflow_and_fits_the_rate():
    model = tiny_model("rnn_tanh", 1, hidden=16)
    text = (SMALL_TEXT * 20)[:600]
    ch = jacobian_chain(model, text, whatif=WhatIf(whh_scale=0.3))
    assert torch.isfinite(ch.log10_spectral).all()
    assert float(ch.log10_spectral.min()) < -60          # far below float32's range, still exact
    assert 0 < ch.fit_spectral.factor < 1
    # a synthetic exact geometric curve is fitted exactly
    d = torch.arange(1, 50)
    fit = fit_rate(d, d.double() * math.log10(0.8) + 1.0)
    assert fit.factor == pytest.approx(0.8) and fit.r2 == pytest.approx(1.0)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm", "gru_d2l"])
def test_jacobian_chain_survives_per_step_shrink_below_float32_range(cell):
    """W_hh × 1e−39: one step shrinks ∂H_T/∂H_t below float32's smallest normal number. The float32
    chain must stay finite and agree with a float64 computation of the same model."""
    model = tiny_model(cell, 1, hidden=16)
    text = SMALL_TEXT[:40]
    w = WhatIf(whh_scale=1e-39)
    f32 = jacobian_chain(model, text, whatif=w)
    f64 = jacobian_chain(model, text, whatif=w, dtype=F64)
    ok = torch.isfinite(f64.log10_frobenius)
    assert ok.sum() > 10
    if cell == "rnn_tanh":   # no gated bypass: the chain falls by ~39 decades per step
        assert float(f64.log10_frobenius[ok].min()) < -300
    torch.testing.assert_close(f32.log10_frobenius[ok], f64.log10_frobenius[ok], rtol=0, atol=1e-3)
    torch.testing.assert_close(f32.log10_spectral[ok], f64.log10_spectral[ok], rtol=0, atol=1e-3)


# ----------------------------------------------------------------------------- gradient map
@pytest.mark.parametrize("cell,layers", [("rnn_relu", 2), ("gru", 1), ("lstm", 2), ("gru_d2l", 2)])
def test_gradient_map_rows_are_single_loss_curves(cell, layers):
    model = tiny_model(cell, layers)
    for knobs in (WhatIf(), WhatIf(truncate=4)):
        gm = gradient_map(model, TEXT, dtype=F64, whatif=knobs)
        assert gm.stride == 1 and gm.message is None
        assert gm.loss_steps.tolist() == list(range(len(TEXT) - 1))
        for j, t in enumerate(gm.loss_steps.tolist()):
            nc = norm_curve(model, TEXT, loss="step", step=t, dtype=F64, whatif=knobs)
            for l in range(layers):
                torch.testing.assert_close(gm.maps[l][j, : t + 1].double(), nc.h_norms[l], rtol=1e-6, atol=1e-12)
                assert gm.maps[l][j, t + 1:].abs().max() == 0
        assert gm.upstream.sum() == sum(t + 1 for t in gm.loss_steps.tolist())


def test_gradient_map_downsamples_and_refuses_with_a_message():
    model = tiny_model("rnn_tanh", 1, hidden=8)
    text = (SMALL_TEXT * 4)[:150]
    gm = gradient_map(model, text, max_macs=1e5)
    assert gm.downsampled and gm.stride > 1 and "every" in gm.message and "MAP_MAX_MACS" in gm.message
    assert gm.loss_steps[-1] == len(text) - 2
    full = gradient_map(model, text)
    rows = [full.loss_steps.tolist().index(t) for t in gm.loss_steps.tolist()]
    torch.testing.assert_close(gm.maps[0], full.maps[0][rows])
    with pytest.raises(GradientError, match="cap"):
        plan_map_rows(MAP_MAX_STEPS + 1, 8, 1, "rnn_tanh")
    with pytest.raises(GradientError, match="shorter"):
        plan_map_rows(5000, 4096, 8, "lstm")
    rows, stride, macs = plan_map_rows(5000, 512, 2, "lstm")
    assert len(rows) <= 1000 and macs <= 2e10
