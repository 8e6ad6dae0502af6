"""rnnviz.gradients against independent references.

References used here (none shares code with rnnviz.gradients):
* per-step autograd: every H_t its own tensor, stepping nn.RNNCell / GRUCell / LSTMCell with the
  model's weights, ``retain_grad`` on each H_t;
* the textbook equations (d2l) stepped one by one with a zero "probe" added to every H_t and C_t —
  the gradient w.r.t. a probe is exactly the total derivative — also used for central finite
  differences in float64;
* torch.autograd.functional.jacobian + torch.linalg.matrix_norm for the Jacobian chain.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from rnnviz import CELLS, kernels, trace
from rnnviz.cells import LayerJacobian, spec
from rnnviz.gradients import (MAP_MAX_STEPS, GradientError, WhatIf, apply_whatif, fit_rate,
                              gradient_map, jacobian_chain, norm_curve, parameter_gradients,
                              plan_map_rows, reading, whh_spectrum)
from tests.backward_loops import torch_backward
from tests.conftest import SMALL_TEXT, tiny_model
from tests.reference import textbook_run, textbook_step

TEXT = SMALL_TEXT[:16]
F64 = torch.float64
LOSSES = [("last", None), ("step", 6), ("sum", None)]
CELL_LAYERS = [(c, n) for c in CELLS for n in (1, 2)]


@pytest.fixture(params=["compiled", "torch"])
def backward(request, monkeypatch):
    """Run a test once through the product's backward (the compiled loops of rnnviz.kernels) and
    once through the plain torch loops of tests/backward_loops.py in its place."""
    if request.param == "torch":
        monkeypatch.setattr(LayerJacobian, "backward", torch_backward)
    return request.param


def _ids(model, text):
    return model.vocab.encode(text).ids


def _loss_steps(T, loss, step):
    return {"last": [T - 2], "step": [step], "sum": list(range(T - 1))}[loss]


# ----------------------------------------------------------------------------- references
def cell_reference(model, text, loss_steps):
    """Per-step nn.*Cell formulation (float64); returns per-layer (T, h) ∂L/∂H_t (retain_grad)."""
    m = copy.deepcopy(model).double()
    cfg = m.config
    ids = _ids(m, text)
    T, H = ids.numel(), cfg.hidden_size
    inputs = list(nn.functional.one_hot(ids, cfg.vocab_size).double())
    hs_all = []
    for layer in m.layers:
        if cfg.cell == "gru_d2l":   # no PyTorch cell: the book's equations (tests/reference.py)
            p = {k: v.double() for k, v in m.textbook_params(len(hs_all)).items()}
            cell = lambda x, h, p=p: textbook_step("gru_d2l", p, x, h)["h"]  # noqa: E731
        elif cfg.cell.startswith("rnn"):
            cell = nn.RNNCell(layer.input_size, H, nonlinearity=cfg.cell[4:])
        elif cfg.cell == "gru":
            cell = nn.GRUCell(layer.input_size, H)
        else:
            cell = nn.LSTMCell(layer.input_size, H)
        if isinstance(cell, nn.Module):
            cell = cell.double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(layer, name + "_l0"))
        h = torch.zeros(1, H, dtype=F64, requires_grad=True)
        c = torch.zeros(1, H, dtype=F64)
        hs = []
        for t in range(T):
            if cfg.cell == "lstm":
                h, c = cell(inputs[t][None], (h, c))
            else:
                h = cell(inputs[t][None], h)
            h.retain_grad()
            hs.append(h)
        hs_all.append(hs)
        inputs = [x[0] for x in hs]
    loss = sum(-torch.log_softmax(m.output(inputs[s]), -1)[ids[s + 1]] for s in loss_steps)
    loss.backward()
    return [torch.cat([x.grad if x.grad is not None else torch.zeros(1, H, dtype=F64) for x in hs])
            for hs in hs_all]


def textbook_loss(model, ids, loss_steps, probes_h=None, probes_c=None, cuts=()):
    """The d2l equations stepped one at a time (tests/reference.py; model already float64).

    probes_h[l]: (T, h) added to H_t of layer l right after it is computed (C likewise, before
    H_t = O_t ⊙ tanh(C_t)). ``cuts``: steps t at which H_{t−1} (and C_{t−1}) are detached.
    """
    _, logits = textbook_run(model, ids, probes_h=probes_h, probes_c=probes_c, cuts=set(cuts))
    return sum(-torch.log_softmax(logits[s], -1)[ids[s + 1]] for s in loss_steps)


def textbook_grads(model, text, loss_steps, cuts=()):
    """Total derivatives ∂L/∂H_t, ∂L/∂C_t via zero probes (float64)."""
    m = copy.deepcopy(model).double()
    ids = _ids(m, text)
    T, H, L = ids.numel(), m.config.hidden_size, m.config.num_layers
    ph = [torch.zeros(T, H, dtype=F64, requires_grad=True) for _ in range(L)]
    pc = [torch.zeros(T, H, dtype=F64, requires_grad=True) for _ in range(L)]
    loss = textbook_loss(m, ids, loss_steps, ph, pc, cuts)
    gh = torch.autograd.grad(loss, ph + pc, allow_unused=True)
    z = torch.zeros(T, H, dtype=F64)
    return [g if g is not None else z for g in gh[:L]], [g if g is not None else z for g in gh[L:]]


# ----------------------------------------------------------------------------- norm curve
@pytest.mark.parametrize("cell,layers", CELL_LAYERS)
@pytest.mark.parametrize("loss,step", LOSSES)
def test_norm_curve_matches_per_step_autograd(cell, layers, loss, step, backward):
    model = tiny_model(cell, layers)
    nc = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64, keep_grads=True)
    ref = cell_reference(model, TEXT, nc.loss_steps)
    n = nc.loss_step + 1
    for l in range(layers):
        torch.testing.assert_close(nc.grads_h[l], ref[l][:n], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(nc.h_norms[l], ref[l][:n].norm(dim=1), rtol=1e-10, atol=1e-12)
        assert ref[l][n:].abs().max() == 0  # steps after the loss do not influence it


@pytest.mark.parametrize("layers", (1, 2))
@pytest.mark.parametrize("loss,step", LOSSES)
def test_lstm_cell_gradient_is_the_total_derivative(layers, loss, step, backward):
    model = tiny_model("lstm", layers)
    nc = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64, keep_grads=True)
    gh, gc = textbook_grads(model, TEXT, nc.loss_steps)
    n = nc.loss_step + 1
    for l in range(layers):
        torch.testing.assert_close(nc.grads_h[l], gh[l][:n], rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(nc.grads_c[l], gc[l][:n], rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(nc.c_norms[l], gc[l][:n].norm(dim=1), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cell,layers", CELL_LAYERS)
def test_norm_curve_matches_central_finite_differences(cell, layers):
    model = tiny_model(cell, layers, hidden=3)
    text = TEXT[:6]
    m = copy.deepcopy(model).double()
    ids = _ids(m, text)
    T, H = ids.numel(), 3
    nc = norm_curve(model, text, loss="sum", dtype=F64, keep_grads=True)
    eps = 1e-6
    for l in range(layers):
        for kind in ("h", "c") if cell == "lstm" else ("h",):
            fd = torch.zeros(T - 1, H, dtype=F64)
            for t in range(T - 1):
                for i in range(H):
                    vals = []
                    for sign in (1, -1):
                        probe = [torch.zeros(T, H, dtype=F64) for _ in range(layers)]
                        probe[l][t, i] = sign * eps
                        kw = {"probes_h": probe} if kind == "h" else {"probes_c": probe}
                        with torch.no_grad():
                            vals.append(float(textbook_loss(m, ids, list(range(T - 1)), **kw)))
                    fd[t, i] = (vals[0] - vals[1]) / (2 * eps)
            ours = (nc.grads_h if kind == "h" else nc.grads_c)[l]
            torch.testing.assert_close(ours, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", CELLS)
def test_stacked_tensor_trap(cell):
    """autograd.grad(loss, stacked outputs) is only the direct part: wrong for all but the last step."""
    model = copy.deepcopy(tiny_model(cell, 1)).double().requires_grad_(False)
    ids = _ids(model, TEXT)
    T = ids.numel()
    x = model.one_hot(ids)
    out, _ = model.layers[0](x)                    # (T, h) — one stacked tensor from the fused layer
    out.requires_grad_(True) if not out.requires_grad else None
    x = x.clone().requires_grad_(True)
    out, _ = model.layers[0](x)
    loss = -torch.log_softmax(model.output(out[T - 2]), -1)[ids[T - 1]]
    (trap,) = torch.autograd.grad(loss, out)        # ∂L/∂out: only the direct path
    nc = norm_curve(model, TEXT, loss="last", keep_grads=True)
    truth = cell_reference(model, TEXT, [T - 2])[0][: T - 1]
    torch.testing.assert_close(nc.grads_h[0], truth, rtol=1e-10, atol=1e-12)
    # the trap agrees only at the loss step itself …
    torch.testing.assert_close(trap[T - 2], truth[T - 2], rtol=1e-10, atol=1e-12)
    # … and is wrong (zero) at every earlier step, where the true total derivative is not
    assert trap[: T - 2].abs().max() == 0
    assert (truth[: T - 2].norm(dim=1) > 0).sum() > 0
    assert not torch.allclose(nc.grads_h[0][: T - 2], trap[: T - 2])


@pytest.mark.parametrize("cell,layers", [("rnn_tanh", 2), ("gru", 1), ("lstm", 2), ("gru_d2l", 2)])
def test_parameter_gradients_match_fused_autograd(cell, layers, backward):
    model = copy.deepcopy(tiny_model(cell, layers)).double()
    ids = _ids(model, TEXT)
    logits, _ = model(ids[:, None])
    loss = nn.functional.cross_entropy(logits[:-1, 0], ids[1:], reduction="sum")
    model.zero_grad()
    loss.backward()
    ours = parameter_gradients(model, TEXT, loss="sum")
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-9, atol=1e-11)


def test_global_and_elementwise_clipping_follow_d2l_and_min_char_rnn():
    model = tiny_model("rnn_tanh", 2)
    grads = parameter_gradients(model, TEXT, loss="sum", dtype=F64)
    total = math.sqrt(sum(float(g.norm()) ** 2 for g in grads.values()))
    theta = total / 3
    nc = norm_curve(model, TEXT, loss="sum", dtype=F64, whatif=WhatIf(clip_norm=theta))
    assert nc.clip.grad_norm == pytest.approx(total, rel=1e-12)
    assert nc.clip.factor == pytest.approx(1 / 3, rel=1e-12)
    assert nc.clip.grad_norm_after == pytest.approx(theta, rel=1e-12)
    # d2l semantics are torch's clip_grad_norm_ on the real gradients
    m2 = copy.deepcopy(model).double()
    ids = _ids(m2, TEXT)
    logits, _ = m2(ids[:, None])
    nn.functional.cross_entropy(logits[:-1, 0], ids[1:], reduction="sum").backward()
    before = nn.utils.clip_grad_norm_(m2.parameters(), theta)
    assert float(before) == pytest.approx(total, rel=1e-10)
    # (torch adds 1e-6 to the norm before dividing; d2l divides by the norm itself)
    assert math.sqrt(sum(float(p.grad.norm()) ** 2 for p in m2.parameters())) == pytest.approx(theta, rel=1e-6)
    # element-wise ±c
    c = 0.05
    nc2 = norm_curve(model, TEXT, loss="sum", dtype=F64, whatif=WhatIf(clip_value=c))
    n_over = sum(int((g.abs() > c).sum()) for g in grads.values())
    n_all = sum(g.numel() for g in grads.values())
    assert nc2.clip.fraction_clipped == pytest.approx(n_over / n_all)
    assert nc2.clip.grad_norm_after == pytest.approx(
        math.sqrt(sum(float(g.clamp(-c, c).norm()) ** 2 for g in grads.values())), rel=1e-12)
    assert nc2.clip.factor == 1.0
    # clipping never changes the measured ∂L/∂H_t themselves
    base = norm_curve(model, TEXT, loss="sum", dtype=F64)
    torch.testing.assert_close(nc.h_norms[1], base.h_norms[1])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,step", [("last", None), ("step", 9), ("sum", None)])
def test_truncated_bptt_matches_detached_reference(cell, loss, step, backward):
    model = tiny_model(cell, 2)
    k = 3
    nc = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64, keep_grads=True, whatif=WhatIf(truncate=k))
    last = nc.loss_step
    cuts = {t for t in range(last, 0, -1) if (last - t + 1) % k == 0}
    gh, _ = textbook_grads(model, TEXT, nc.loss_steps, cuts)
    n = last + 1
    for l in range(2):
        torch.testing.assert_close(nc.grads_h[l], gh[l][:n], rtol=1e-9, atol=1e-11)
    if loss != "sum":
        assert nc.h_norms[1][: n - k].abs().max() == 0      # exact zeros beyond k−1 steps back
        full = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64)
        torch.testing.assert_close(nc.h_norms[1][n - k:], full.h_norms[1][n - k:])


def test_activation_swap_equals_the_other_vanilla_rnn():
    tanh_model = tiny_model("rnn_tanh", 2)
    relu_model = tiny_model("rnn_relu", 2)
    relu_model.load_state_dict(tanh_model.state_dict())
    a = norm_curve(tanh_model, TEXT, loss="sum", dtype=F64, whatif=WhatIf(activation="relu"))
    b = norm_curve(relu_model, TEXT, loss="sum", dtype=F64)
    for l in range(2):
        torch.testing.assert_close(a.h_norms[l], b.h_norms[l])
    with pytest.raises(GradientError, match="vanilla RNN"):
        norm_curve(tiny_model("gru"), TEXT, whatif=WhatIf(activation="relu"))


def test_scaling_whh_scales_the_spectrum():
    model = tiny_model("rnn_tanh", 2)
    s1 = whh_spectrum(model)
    s2 = whh_spectrum(model, WhatIf(whh_scale=2.0))
    for l in range(2):
        W = model.textbook_params(l)["W_hh"].double()
        ev = torch.linalg.eigvals(W)
        assert s1.blocks[l]["W_hh"].spectral_radius == pytest.approx(float(ev.abs().max()), rel=1e-12)
        torch.testing.assert_close(s1.blocks[l]["W_hh"].singular_values, torch.linalg.svdvals(W))
        assert s2.radius(l) == pytest.approx(2 * s1.radius(l), rel=1e-12)
        assert s1.blocks[l]["W_hh"].spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(W, 2)))
    lstm = whh_spectrum(tiny_model("lstm"))
    assert set(lstm.blocks[0]) == {"W_hi", "W_hf", "W_ho", "W_hc"} and lstm.main == "W_hc"
    assert set(whh_spectrum(tiny_model("gru")).blocks[0]) == {"W_hr", "W_hz", "W_hh"}


# ----------------------------------------------------------------------------- Jacobian chain
@pytest.mark.parametrize("cell,layers", CELL_LAYERS)
def test_jacobian_chain_matches_explicit_jacobians(cell, layers):
    model = tiny_model(cell, layers)
    end = 9
    ch = jacobian_chain(model, TEXT, end=end, layer=layers - 1, dtype=F64)
    m = copy.deepcopy(model).double()
    tr = trace(m, TEXT)
    lay = m.layers[layers - 1]
    x = (tr[f"layer{layers - 2}.h"] if layers > 1 else m.one_hot(tr.ids)).clone()
    for t in range(end):
        h0 = tr[f"layer{layers - 1}.h"][t].clone()
        c0 = tr[f"layer{layers - 1}.c"][t].clone() if cell == "lstm" else None

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


# ----------------------------------------------------------------------------- safety
def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cell", CELLS)
def test_what_ifs_never_touch_the_shared_model(cell):
    model = tiny_model(cell, 2)
    model.requires_grad_(False)
    before = _snapshot(model)
    knobs = [WhatIf(whh_scale=3.0), WhatIf(truncate=2), WhatIf(clip_norm=0.1), WhatIf(clip_value=0.01),
             WhatIf(whh_scale=0.5, truncate=3, clip_norm=1.0, clip_value=0.1)]
    if cell.startswith("rnn"):
        knobs += [WhatIf(activation="relu"), WhatIf(activation="tanh", whh_scale=2.0)]
    tr = trace(model, TEXT)
    for w in knobs:
        copy_ = apply_whatif(model, w)
        if w.changes_model:
            assert copy_ is not model
        norm_curve(model, TEXT, loss="sum", whatif=w)
        norm_curve(model, tr, loss="last", whatif=w)
        jacobian_chain(model, TEXT, whatif=w)
        gradient_map(model, tr, whatif=w)
        whh_spectrum(model, w)
        after = model.state_dict()
        for k, v in before.items():
            assert torch.equal(v, after[k]), f"{k} changed by {w}"
            assert v.dtype == after[k].dtype
    assert model.config.cell == cell


def test_overflow_is_reported_not_raised(backward):
    """W_hh × 5 over 5,000 steps with ReLU: the forward overflows to inf, then nan."""
    model = tiny_model("rnn_relu", 1)
    text = (SMALL_TEXT * 120)[:5000]
    knobs = WhatIf(whh_scale=5.0)
    nc = norm_curve(model, text, loss="last", whatif=knobs)
    assert nc.any_nonfinite
    nf = nc.nonfinite["layer0.h"]
    assert nf.inf + nf.nan > 0 and nf.steps
    assert len(nc.h_norms[0]) == len(text) - 1         # nothing dropped
    words = reading(nc)
    assert "overflowed" in words and ("NaN" in words or "infinite" in words)
    ch = jacobian_chain(model, text, whatif=knobs)
    assert ch.nonfinite.any and len(ch.log10_spectral) == len(text) - 1
    gm = gradient_map(model, text[:1500], whatif=knobs)
    assert gm.nonfinite["layer0.h"].any
    nc2 = norm_curve(model, text, loss="sum", whatif=WhatIf(whh_scale=5.0, clip_norm=1.0))
    assert nc2.clip is not None and not math.isfinite(nc2.clip.grad_norm)


# ----------------------------------------------------------------------------- reading, errors
def test_reading_names_vanishing_and_exploding_with_the_factor():
    model = tiny_model("rnn_tanh", 1, hidden=16)
    text = (SMALL_TEXT * 3)[:100]
    nc = norm_curve(model, text, whatif=WhatIf(whh_scale=0.5), dtype=F64)
    words = reading(nc, whh_spectrum(model, WhatIf(whh_scale=0.5)))
    assert "vanishing" in words and f"{nc.fits['layer0.h'].factor:.3g}" in words
    assert "spectral radius" in words
    relu = tiny_model("rnn_relu", 1, hidden=16)
    nc2 = norm_curve(relu, text[:40], whatif=WhatIf(whh_scale=4.0), dtype=F64)
    assert nc2.fits["layer0.h"].factor > 1 and "exploding" in reading(nc2)
    lstm = norm_curve(tiny_model("lstm", 2), TEXT, whatif=WhatIf(truncate=3, clip_norm=0.01))
    text_l = reading(lstm, whh_spectrum(tiny_model("lstm", 2)))
    assert "C_t" in text_l and "Truncated" in text_l and "clipping" in text_l


def test_errors_are_gradient_errors():
    model = tiny_model("gru", 1)
    with pytest.raises(GradientError, match="at least 2"):
        norm_curve(model, "h")
    with pytest.raises(GradientError, match="empty"):
        norm_curve(model, "")
    with pytest.raises(GradientError, match="step s"):
        norm_curve(model, TEXT, loss="step", step=len(TEXT) - 1)
    with pytest.raises(GradientError, match="Unknown loss"):
        norm_curve(model, TEXT, loss="mean")
    with pytest.raises(GradientError):
        WhatIf(truncate=0)
    with pytest.raises(GradientError):
        WhatIf(clip_norm=-1)
    with pytest.raises(GradientError):
        WhatIf(whh_scale=float("inf"))
    with pytest.raises(GradientError, match="end step"):
        jacobian_chain(model, TEXT, end=0)
    with pytest.raises(GradientError, match="layer"):
        jacobian_chain(model, TEXT, layer=3)


def test_float32_default_agrees_with_float64():
    model = tiny_model("lstm", 2, hidden=16)
    a = norm_curve(model, TEXT, loss="sum")
    b = norm_curve(model, TEXT, loss="sum", dtype=F64)
    assert a.dtype == "float32" and b.dtype == "float64"
    for l in range(2):
        torch.testing.assert_close(a.h_norms[l], b.h_norms[l], rtol=1e-4, atol=1e-7)


#: Cells with a compiled backward kernel (every cell).
KERNEL_CELLS = [c for c in CELLS if spec(c).jacobian.has_kernel]


@pytest.mark.parametrize("cell", KERNEL_CELLS)
def test_compiled_backward_split_over_threads_matches_autograd(cell, monkeypatch):
    """The compiled loop splits each step's product by rows over torch's thread count; an odd
    hidden size (7 units over 2 threads: blocks of 3 and 4) must give the per-step autograd numbers,
    and the compiled kernel must really be the one that ran."""
    calls = []
    for name in ("rnn_backward", "gru_backward", "lstm_backward", "gru_d2l_backward"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _real=real, _n=name: (calls.append((_n, a[-1])), _real(*a)))
    model = tiny_model(cell, 2, hidden=7)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        nc = norm_curve(model, TEXT, loss="sum", dtype=F64, keep_grads=True)
    finally:
        torch.set_num_threads(old)
    kind = cell if cell in ("lstm", "gru", "gru_d2l") else "rnn"
    assert calls == [(f"{kind}_backward", 2)] * 2            # both layers, two threads each
    ref = cell_reference(model, TEXT, nc.loss_steps)
    for l in range(2):
        torch.testing.assert_close(nc.grads_h[l], ref[l][: nc.loss_step + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", KERNEL_CELLS)
@pytest.mark.parametrize("truncate", [None, 3])
def test_compiled_backward_in_chunks_matches_autograd(cell, truncate, monkeypatch):
    """The compiled backward runs in chunks of steps with a deadline check between them
    (kernels.CHUNK_MACS); chunks of a step or two (the LSTM's carried dC_{t+1} ⊙ F_{t+1} crossing
    every boundary, truncation cuts falling inside and on them) give the per-step autograd numbers."""
    model = tiny_model(cell, 2, hidden=7)
    G = {"lstm": 4, "gru": 3, "gru_d2l": 3}.get(cell, 1)
    monkeypatch.setattr(kernels, "CHUNK_MACS", 2 * G * 7 * 7)          # two steps per call
    nc = norm_curve(model, TEXT, loss="sum", dtype=F64, keep_grads=True, whatif=WhatIf(truncate=truncate))
    last = nc.loss_step
    cuts = {t for t in range(last, 0, -1) if truncate and (last - t + 1) % truncate == 0}
    gh, _ = textbook_grads(model, TEXT, nc.loss_steps, cuts)
    for l in range(2):
        torch.testing.assert_close(nc.grads_h[l], gh[l][: last + 1], rtol=1e-9, atol=1e-11)


def test_a_compiled_backward_past_its_deadline_is_stopped(monkeypatch):
    """Compiled code cannot see the deadline: it is checked between chunks, so a backward pass that
    runs past it stops with Overtime instead of running on."""
    from rnnviz.serving.deadline import Overtime, deadline
    monkeypatch.setattr(kernels, "CHUNK_MACS", 1)                       # one step per call
    model = tiny_model("lstm", 1, hidden=7)
    norm_curve(model, TEXT, loss="sum", dtype=F64)                      # compiled and loaded
    with pytest.raises(Overtime) as stopped, deadline(-1.0):
        norm_curve(model, TEXT, loss="sum", dtype=F64)
    assert any(entry.path.name == "kernels.py" for entry in stopped.traceback)    # stopped in there
