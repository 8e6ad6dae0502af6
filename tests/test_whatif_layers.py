"""What-if knobs that act on one layer (#30): WhatIf(layer=l) scales, truncates and clips layer l only.
References: per-step autograd on an independently built model (nn.*Cell / the textbook equations of
tests/reference.py), never rnnviz's own backward pass."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnviz import CELLS
from rnnviz.gradients import (GradientError, WhatIf, gradient_map, norm_curve, reading, whh_spectrum)
from rnnviz.plots.gradients import norm_curve_figure
from tests.conftest import SMALL_TEXT, tiny_model
from tests.reference import textbook_step
from tests.test_gradients import cell_reference

TEXT = SMALL_TEXT[:18]
F64 = torch.float64


def _scaled_copy(model, layer: int, scale: float):
    """An independent copy of ``model`` with layer ``layer``'s W_hh multiplied by ``scale``."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.layers[layer].weight_hh_l0.mul_(scale)
    return m


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,step", [("step", 7)])
def test_scaling_w_hh_of_layer_1_only_matches_autograd_per_layer(cell, loss, step):
    model = tiny_model(cell, 3)
    nc = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64, whatif=WhatIf(whh_scale=2.5, layer=1))
    s = nc.loss_step
    ref = cell_reference(_scaled_copy(model, 1, 2.5), TEXT, [s])
    every = norm_curve(model, TEXT, loss=loss, step=step, dtype=F64, whatif=WhatIf(whh_scale=2.5))
    for l in range(3):
        torch.testing.assert_close(nc.h_norms[l], ref[l][:s + 1].norm(dim=1), rtol=1e-9, atol=1e-14)
    assert not torch.allclose(nc.h_norms[0], every.h_norms[0])        # not the same as scaling every layer
    sp, sp0 = whh_spectrum(model, WhatIf(whh_scale=2.5, layer=1)), whh_spectrum(model)
    assert sp.radius(1) == pytest.approx(2.5 * sp0.radius(1), rel=1e-6)     # float32 weights
    assert sp.radius(0) == sp0.radius(0) and sp.radius(2) == sp0.radius(2)


def _per_layer_cut_reference(model, text: str, s: int, layer: int, k: int) -> list[torch.Tensor]:
    """∂ℓ_s/∂H_t of every layer by autograd, the textbook equations stepped by hand with layer
    ``layer``'s state detached where truncated BPTT with window k (ending at s) cuts it."""
    cfg = model.config
    ids = torch.as_tensor(model.vocab.encode(text).ids)
    T, H = ids.numel(), cfg.hidden_size
    x = torch.nn.functional.one_hot(ids, cfg.vocab_size).double()
    cuts = {t for t in range(s, 0, -1) if (s - t + 1) % k == 0}
    probes = [torch.zeros(T, H, dtype=F64, requires_grad=True) for _ in range(cfg.num_layers)]
    for l in range(cfg.num_layers):
        p = {n: v.double() for n, v in model.textbook_params(l).items()}
        h, c, out = torch.zeros(H, dtype=F64), torch.zeros(H, dtype=F64), []
        for t in range(T):
            if l == layer and t in cuts:
                h, c = h.detach(), c.detach()
            o = textbook_step(cfg.cell, p, x[t], h, c)
            h, c = o["h"] + probes[l][t], o.get("c", c)
            out.append(h)
        x = torch.stack(out)
    p = {n: v.double() for n, v in model.textbook_params(0).items()}
    logits = x[s] @ p["W_hq"] + p["b_q"]
    (-torch.log_softmax(logits, -1)[ids[s + 1]]).backward()
    return [g.grad for g in probes]


@pytest.mark.parametrize("cell", ["lstm", "gru_d2l"])     # a compiled and a torch-loop backward
@pytest.mark.parametrize("layer", [0, 1])
def test_truncating_one_layer_matches_autograd(cell, layer):
    model = tiny_model(cell, 2)
    k, s = 4, len(TEXT) - 2
    nc = norm_curve(model, TEXT, dtype=F64, whatif=WhatIf(truncate=k, layer=layer))
    ref = _per_layer_cut_reference(model, TEXT, s, layer, k)
    for l in range(2):             # rtol: textbook_params sums b_ih + b_hh in float32
        torch.testing.assert_close(nc.h_norms[l], ref[l][:s + 1].norm(dim=1), rtol=1e-6, atol=1e-12)
    if layer == 1:                   # the top layer cut: it is 0 beyond k − 1 steps back, layer 0 is not
        assert nc.truncated_from == k and nc.h_norms[1][:s - k + 1].abs().max() == 0
        assert nc.fits["layer1.h"].d_max == k - 1 and nc.fits["layer0.h"].d_max == s
    else:                            # a lower layer cut: the top layer hands the gradient down
        assert nc.truncated_from is None and (nc.h_norms[0] > 0).all()
        assert "layer 0 only cuts" in reading(nc)
    fig = norm_curve_figure(nc)
    assert any(f"layer {layer} truncated: k = {k}" in a.text for a in fig.layout.annotations)


@pytest.mark.parametrize("layer", [0, 1])
def test_gradient_map_rows_match_the_curve_with_one_layer_truncated(layer):
    model = tiny_model("lstm", 2)
    knobs = WhatIf(truncate=3, layer=layer)
    text = TEXT[:12]
    gm = gradient_map(model, text, dtype=F64, whatif=knobs)
    for j, t in enumerate(gm.loss_steps.tolist()):
        nc = norm_curve(model, text, loss="step", step=t, dtype=F64, whatif=knobs)
        for l in range(2):
            torch.testing.assert_close(gm.maps[l][j, : t + 1].double(), nc.h_norms[l], rtol=1e-6, atol=1e-12)


def test_clipping_one_layer_clips_only_its_parameters():
    model = tiny_model("gru", 2)
    m = copy.deepcopy(model).double().requires_grad_(True)       # PyTorch's fused forward + autograd
    ids = torch.as_tensor(m.vocab.encode(TEXT).ids)
    logits, _ = m(ids[:, None])
    s = len(TEXT) - 2
    (-torch.log_softmax(logits[s, 0], -1)[ids[s + 1]]).backward()
    grads = {k: p.grad for k, p in m.named_parameters() if k.startswith("layers.1.")}
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values())).item()
    theta = norm / 4
    nc = norm_curve(model, TEXT, dtype=F64, whatif=WhatIf(clip_norm=theta, layer=1))
    assert set(nc.clip.per_parameter) == set(grads) and nc.clip.layer == 1
    assert nc.clip.grad_norm == pytest.approx(norm, rel=1e-9) and nc.clip.factor == pytest.approx(0.25, rel=1e-9)
    assert "of layer 1's parameters" in reading(nc)
    names = [t.name for t in norm_curve_figure(nc).data]
    assert any(n.startswith("layer 1 as the update sees it") for n in names)


def test_layer_knob_is_checked_and_described():
    assert WhatIf(whh_scale=2, truncate=3, activation="relu", layer=1).describe() == [
        "W_hh × 2 (layer 1 only)", "φ = relu (every layer)", "BPTT truncated to k = 3 (layer 1 only)"]
    with pytest.raises(GradientError, match="layer 2 does not exist"):
        norm_curve(tiny_model("rnn_tanh", 2), TEXT, whatif=WhatIf(whh_scale=2.0, layer=2))
    with pytest.raises(GradientError):
        WhatIf(layer=-1)
