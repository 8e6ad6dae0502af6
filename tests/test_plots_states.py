"""Figure specs of the hidden-state views and the pure data prep behind them (rnnviz.views)."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
import plotly.io as pio
import pytest
import torch

import rnnviz
from rnnviz import views
from rnnviz.plots import states as splots
from rnnviz.plots.common import DIVERGING, SEQUENTIAL

from .conftest import SMALL_TEXT, tiny_model

REPEATS = "aaa  bb\n\naaa"


def spec(fig) -> dict:
    return json.loads(pio.to_json(fig))


def decode(arr):
    """A Plotly JSON array: a list, or a base64 typed array {"dtype", "bdata", "shape"}."""
    if isinstance(arr, dict) and "bdata" in arr:
        a = np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
        shape = arr.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape)
        return a
    return np.asarray(arr)


@pytest.fixture(scope="module")
def lstm_trace():
    model = tiny_model("lstm", 2, 8)
    return model, rnnviz.trace(model, REPEATS)


def test_heatmap_has_one_column_per_step_even_for_repeated_chars(lstm_trace):
    _, tr = lstm_trace
    T = len(REPEATS)
    fig = splots.state_heatmap(tr["layer0.h"], tr.chars)
    s = spec(fig)["data"][0]
    assert s["type"] == "heatmap"
    assert len(s["x"]) == T == len(set(s["x"]))           # repeated chars stay separate columns
    z = decode(s["z"])
    assert z.shape == (8, T)
    assert np.allclose(z, tr["layer0.h"].numpy().T, atol=1e-7)   # z is the trace, units × steps


def test_heatmap_scale_is_diverging_and_centred_on_zero(lstm_trace):
    _, tr = lstm_trace
    s = spec(splots.state_heatmap(tr["layer0.c"], tr.chars, name="C"))["data"][0]
    assert s["zmid"] == 0
    assert s["zmin"] == -s["zmax"]
    assert s["zmax"] == pytest.approx(float(tr["layer0.c"].abs().max()), rel=1e-6)
    rd = spec(splots.state_heatmap(tr["layer0.c"], tr.chars))["data"][0]["colorscale"]
    assert rd[0][1] != rd[-1][1]   # a real two-sided scale
    assert "%{x}" in s["hovertemplate"] and "%{y}" in s["hovertemplate"] and "%{z" in s["hovertemplate"]


def test_whitespace_labels_are_visible_symbols(lstm_trace):
    _, tr = lstm_trace
    x = spec(splots.state_heatmap(tr["layer0.h"], tr.chars))["data"][0]["x"]
    assert x[3] == "3:␣" and x[7] == "7:⏎" and x[8] == "8:⏎"
    assert all(label.split(":", 1)[1].strip() for label in x)


def test_window_labels_keep_global_step_numbers(lstm_trace):
    _, tr = lstm_trace
    fig = splots.state_heatmap(tr["layer0.h"][5:9], tr.chars[5:9], start=5)
    assert spec(fig)["data"][0]["x"] == ["5:b", "6:b", "7:⏎", "8:⏎"]


def test_unit_order_is_applied_to_rows(lstm_trace):
    _, tr = lstm_trace
    order = [3, 1, 0, 2, 7, 6, 5, 4]
    s = spec(splots.state_heatmap(tr["layer1.h"], tr.chars, units=order))["data"][0]
    assert s["y"] == [f"L0 h[{u}]" for u in order]
    assert np.allclose(decode(s["z"]), tr["layer1.h"].numpy()[:, order].T, atol=1e-7)
    assert spec(splots.state_heatmap(tr["layer1.h"], tr.chars))["layout"]["yaxis"]["autorange"] == "reversed"


def test_gate_heatmap_is_sequential_0_to_1(lstm_trace):
    _, tr = lstm_trace
    s = spec(splots.state_heatmap(tr["layer0.gates.f"], tr.chars, gate=True, name="F"))["data"][0]
    assert (s["zmin"], s["zmax"]) == (0, 1)
    assert "zmid" not in s


def test_heatmap_rejects_mismatched_shapes(lstm_trace):
    _, tr = lstm_trace
    with pytest.raises(ValueError):
        splots.state_heatmap(tr["layer0.h"], tr.chars[:-1])


def _png_size(uri: str) -> tuple[int, int]:
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_png_encoder_round_trips_pixels():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    uri = splots.png_data_uri(rgb)
    data = base64.b64decode(uri.split(",", 1)[1])
    assert _png_size(uri) == (3, 2)
    idat = data.index(b"IDAT")
    n = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = zlib.decompress(data[idat + 4:idat + 4 + n])
    rows = [raw[i * 10 + 1:(i + 1) * 10] for i in range(2)]   # filter byte + 9 bytes per row
    assert b"".join(rows) == rgb.tobytes()


def test_overview_is_one_image_of_the_whole_text():
    model = tiny_model("rnn_tanh", 1, 8)
    text = (SMALL_TEXT * 40)[:1500]
    tr = rnnviz.trace(model, text)
    means, edges = views.downsample_steps(tr["layer0.h"], 400)
    fig = splots.overview_heatmap(means, edges, units=list(range(8)), window=(100, 220))
    s = spec(fig)
    assert [d["type"] for d in s["data"]] == ["image"]
    assert _png_size(s["data"][0]["source"]) == (400, 8)
    assert s["layout"]["xaxis"]["range"] == [-0.5, 1499.5]
    rect = s["layout"]["shapes"][0]
    assert (rect["x0"], rect["x1"]) == (99.5, 219.5)


def test_colormap_centres_zero_on_white():
    rgb = splots.colormap_rgb(np.array([[-1.0, 0.0, 1.0]]), -1, 1, DIVERGING)[0]
    assert tuple(rgb[1]) == tuple(int(v) for v in rgb[1])
    assert min(rgb[1]) > 230                      # 0 → (near) white
    assert rgb[0][2] > rgb[0][0] and rgb[2][0] > rgb[2][2]   # negative blue, positive red


# --------------------------------------------------------------------------- views
def test_unit_orders_are_permutations():
    torch.manual_seed(0)
    v = torch.randn(50, 12)
    for method in views.ORDERINGS:
        order = views.unit_order(v, method)
        assert sorted(order) == list(range(12)), method
    assert views.unit_order(v, "trained") == list(range(12))
    var = v.var(0, unbiased=False)
    assert views.unit_order(v, "variance")[0] == int(var.argmax())
    with pytest.raises(ValueError):
        views.unit_order(v, "alphabetical")


def test_clustered_order_puts_correlated_units_together():
    torch.manual_seed(1)
    a, b = torch.randn(200, 1), torch.randn(200, 1)
    noise = 0.05 * torch.randn(200, 6)
    # units 0, 2, 4 follow signal a; units 1, 3, 5 follow signal b; unit 6 is constant
    v = torch.cat([a, b, a, b, a, b], dim=1) + noise
    v = torch.cat([v, torch.zeros(200, 1)], dim=1)
    order = views.unit_order(v, "clustered")
    assert order[-1] == 6                      # the constant unit goes last
    groups = [u % 2 for u in order[:6]]
    assert groups in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_downsample_means_and_edges():
    v = torch.arange(10, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    means, edges = views.downsample_steps(v, 4)
    assert edges[0] == 0 and edges[-1] == 10 and len(edges) == 5
    for i in range(4):
        assert float(means[i, 0]) == pytest.approx(float(v[edges[i]:edges[i + 1], 0].mean()))
    same, e = views.downsample_steps(v, 100)
    assert torch.equal(same, v) and e == list(range(11))


def test_window_bounds_and_budget():
    assert views.window_bounds(100, 95, 20) == (80, 100)
    assert views.window_bounds(10, -5, 50) == (0, 10)
    assert views.window_bounds(1, 0, 120) == (0, 1)
    assert views.max_window(256) * 256 <= views.HEATMAP_CELL_BUDGET


def test_saturation_counts_fractions():
    g = torch.tensor([[0.05, 0.5], [0.95, 0.5], [0.5, 0.99], [0.01, 0.5]])
    s = views.saturation(g)
    assert s["low"] == pytest.approx(2 / 8) and s["high"] == pytest.approx(2 / 8)
    assert s["saturated"] == pytest.approx(0.5)
    assert s["unit_low"].tolist() == pytest.approx([0.5, 0.0])
    assert s["unit_high"].tolist() == pytest.approx([0.25, 0.25])


@pytest.mark.parametrize("cell,gates", [("lstm", ["i", "f", "o"]), ("gru", ["z", "r"]), ("rnn_tanh", [])])
def test_saturation_table_and_figure(cell, gates):
    tr = rnnviz.trace(tiny_model(cell, 1, 8), SMALL_TEXT)
    rows = views.saturation_table(tr, 0)
    assert [r["gate"] for r in rows] == gates
    for r in rows:
        g = tr[r["name"]]
        assert r["< 0.1"] == pytest.approx(float((g < 0.1).double().mean()))
        assert r["> 0.9"] == pytest.approx(float((g > 0.9).double().mean()))
    if rows:
        lows = {r["gate"]: views.saturation(tr[r["name"]])["unit_low"].numpy() for r in rows}
        highs = {r["gate"]: views.saturation(tr[r["name"]])["unit_high"].numpy() for r in rows}
        s = spec(splots.saturation_figure(rows, lows, highs))
        assert len(s["data"]) == 2 * len(gates)
        assert s["layout"]["barmode"] == "stack"


def test_feature_heatmap_rows_are_named_features_on_a_scale_from_white():
    from rnnviz.plots.states import feature_heatmap
    acts = np.abs(np.random.default_rng(0).normal(size=(5, 9))).astype(np.float32)
    fig = spec(feature_heatmap(acts, list("abcde"), [7, 2], layer=1, state="c", named={7: "vowel · causal"}))
    d = fig["data"][0]
    assert d["y"] == ["L1 featc[7]", "L1 featc[2]"]
    np.testing.assert_allclose(decode(d["z"]), acts[:, [7, 2]].T)
    assert d["zmin"] == 0 and abs(d["zmax"] - acts[:, [7, 2]].max()) < 1e-6
    first = d["colorscale"][0][1].replace(" ", "")
    assert first in ("rgb(255,245,240)", "#fff5f0", "rgb(255,255,255)")       # white-ish: off
    assert fig["layout"]["yaxis"]["ticktext"] == ["<b>L1 featc[7] · vowel · causal</b>", "L1 featc[2]"]
