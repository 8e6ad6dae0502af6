"""The depth × time figure: the heat map and the curves show DepthFlow's numbers, on log scales."""

from __future__ import annotations

import json

import numpy as np
import torch

from rnnviz.gradients import WhatIf, depth_flow
from rnnviz.plots import gradients as PG
from tests.conftest import SMALL_TEXT, tiny_model

HOSTILE = "<b>x</b>&\n\t " * 3


def test_heat_map_rows_are_layers_and_curves_are_log_norms():
    flow = depth_flow(tiny_model("rnn_tanh", 3), SMALL_TEXT, loss="sum")
    fig = PG.depth_flow_figure(flow)
    heat = next(d for d in fig.data if d.type == "heatmap")
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (3, flow.norms.shape[1]) and list(heat.y) == [0, 1, 2]
    np.testing.assert_allclose(z, np.log10(flow.norms.numpy()), rtol=1e-9)
    curves = [d for d in fig.data if d.type == "scatter" and d.name in ("layer 0", "layer 1", "layer 2")]
    assert len(curves) == 3
    np.testing.assert_allclose(np.asarray(curves[2].y, dtype=float), flow.norms[2].numpy(), rtol=1e-9)
    assert fig.layout.yaxis2.type == "log" and fig.layout.yaxis2.tickmode == "array"
    assert sum(1 for d in fig.data if d.name and " fit: × " in d.name) == 3
    title = fig.layout.title.text
    assert "per step back in time" in title and "per layer down" in title


def test_zeros_are_gaps_and_labels_are_escaped():
    model = tiny_model("lstm", 2)
    flow = depth_flow(model, HOSTILE, whatif=WhatIf(truncate=3))
    fig = PG.depth_flow_figure(flow)
    heat = next(d for d in fig.data if d.type == "heatmap")
    z = np.asarray(heat.z, dtype=float)
    assert np.isnan(z[:, 3:]).all() and np.isfinite(z[:, :3]).all()
    assert "exact zeros" in fig.layout.title.text
    text = json.dumps(fig.to_plotly_json()["data"][0]["hovertext"])
    assert "<b>" not in text
    single = PG.depth_flow_figure(depth_flow(tiny_model("gru", 1), SMALL_TEXT))
    assert "per layer down" not in single.layout.title.text
    assert torch.isfinite(flow.norms[:, :3]).all()
