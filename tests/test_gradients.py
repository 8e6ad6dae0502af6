"""rnnviz.gradients against independent references.

References used here (none shares code with rnnviz.gradients):
* per-step autograd: every H_t its own tensor, stepping nn.RNNCell / GRUCell / LSTMCell with the
  model's weights, ``retain_grad`` on each H_t;
* the textbook equations (d2l) stepped one by one with a zero "probe" added to every H_t and C_t —
  the gradient w.r.t. a probe is exactly the total derivative — also used for central finite
  differences in float64 (both in tests/grad_reference.py).
The Jacobian chain and the gradient map: tests/test_jacobian_chain.py; the compiled backward's
threads, chunks and deadline: tests/test_gradient_kernels.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from rnnviz import CELLS, trace
from rnnviz.cells import LayerJacobian
from rnnviz.gradients import (GradientError, WhatIf, apply_whatif, gradient_map, jacobian_chain, norm_curve,
                              parameter_gradients, reading, whh_spectrum)
from tests.backward_loops import torch_backward
from tests.conftest import SMALL_TEXT, tiny_model
from tests.grad_reference import CELL_LAYERS, F64, TEXT, ids_of, cell_reference, textbook_grads, textbook_loss

LOSSES = [("last", None), ("step", 6), ("sum", None)]


@pytest.fixture(params=["compiled", "torch"])
def backward(request, monkeypatch):
    """Run a test once through the product's backward (the compiled loops of rnnviz.kernels) and
    once through the plain torch loops of tests/backward_loops.py in its place."""
    if request.param == "torch":
        monkeypatch.setattr(LayerJacobian, "backward", torch_backward)
    return request.param


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
    ids = ids_of(m, text)
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
    ids = ids_of(model, TEXT)
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
    ids = ids_of(model, TEXT)
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
    ids = ids_of(m2, TEXT)
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
