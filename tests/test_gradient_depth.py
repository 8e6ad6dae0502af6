"""Gradient flow over layers × time (rnnviz.gradients.depth) against per-step autograd, per layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnviz import CELLS
from rnnviz.gradients import depth_flow, depth_flow_from_curve, norm_curve
from tests.conftest import SMALL_TEXT, tiny_model
from tests.test_gradients import cell_reference

TEXT = SMALL_TEXT[:20]
F64 = torch.float64


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", (2, 3))
@pytest.mark.parametrize("loss,step", [("last", None), ("step", 9), ("sum", None)])
def test_layer_by_distance_norms_match_autograd(cell, layers, loss, step):
    model = tiny_model(cell, layers)
    flow = depth_flow(model, TEXT, loss=loss, step=step, dtype=F64)
    T = len(TEXT)
    loss_steps = {"last": [T - 2], "step": [step], "sum": list(range(T - 1))}[loss]
    ref = cell_reference(model, TEXT, loss_steps)              # per layer (T, h) ∂L/∂H_t
    last = loss_steps[-1]
    assert flow.norms.shape == (layers, last + 1) and flow.loss_step == last
    expected = torch.stack([ref[l][:last + 1].norm(dim=1).flip(0) for l in range(layers)])
    torch.testing.assert_close(flow.norms, expected, rtol=1e-10, atol=1e-14)
    assert flow.char_at(0) == TEXT[last] and flow.char_at(last) == TEXT[0]
    # depth factor: the layer-to-layer ratio at the loss step (only the path down the layers)
    for l in range(layers - 1):
        assert flow.depth_factors[l].item() == pytest.approx((expected[l, 0] / expected[l + 1, 0]).item(),
                                                             rel=1e-9)
    # time factor: least squares of log10 norm against distance ≥ 1, per layer
    for l in range(layers):
        d = np.arange(1, last + 1)
        y = np.log10(expected[l][1:].numpy())
        if len(d) >= 2 and np.isfinite(y).all():
            slope = np.polyfit(d, y, 1)[0]
            assert flow.time_factors[l] == pytest.approx(10 ** slope, rel=1e-8)


def test_lstm_flow_carries_the_cell_state_too():
    flow = depth_flow(tiny_model("lstm", 2), TEXT, dtype=F64)
    assert flow.c_norms is not None and flow.c_norms.shape == flow.norms.shape
    assert depth_flow(tiny_model("gru", 2), TEXT).c_norms is None


def test_from_curve_reuses_a_norm_curve():
    model = tiny_model("rnn_tanh", 3)
    curve = norm_curve(model, TEXT)
    flow = depth_flow_from_curve(curve)
    for l in range(3):
        assert torch.equal(flow.norms[l], curve.h_norms[l].flip(0))
        assert flow.time_fits[l] is curve.fits[f"layer{l}.h"]
    single = depth_flow(tiny_model("gru", 1), TEXT)
    assert single.depth_factors.numel() == 0 and not math.isnan(single.norms[0, 0].item())


def test_depth_reading_compares_depth_with_time():
    from rnnviz.gradients import depth_reading
    flow = depth_flow(tiny_model("rnn_tanh", 3), TEXT)
    text = depth_reading(flow, horizon=10)
    assert f"× {flow.time_factors[-1]:.3g} in the top layer" in text
    assert "2 layer boundaries" in text and "10 steps back" in text
    assert "on average" not in depth_reading(depth_flow(tiny_model("gru", 1), TEXT))
