"""Compare's "layers of one model" (#30): rnnviz.compare_layers against the textbook stepper and
autograd, and the view on the shipped deep checkpoints (AppTest)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz.compare_layers import compare_layers, layer_gradient_curves
from tests.conftest import REPO, SMALL_TEXT, chart_specs, open_view, tiny_model
from tests.reference import textbook_run
from tests.test_gradients import cell_reference
from tests.test_plots_states import decode

TEXT = "a layer above a layer: what does each one hold while it reads this line of ours"


def _reference_states(model, text: str) -> list[dict]:
    ids = torch.as_tensor(model.vocab.encode(rnnviz.preprocess(text, model.config.preprocessing)).ids)
    layers, _ = textbook_run(model, ids)
    return layers


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("rnn_tanh", 3)])
def test_statistics_match_the_textbook_stepper(cell, layers):
    model = tiny_model(cell, layers, hidden=12)
    lc = compare_layers(model, SMALL_TEXT)
    ref = _reference_states(model, SMALL_TEXT)
    rows = lc.table.set_index(["layer", "state"])
    for l in range(layers):
        for kind, symbol in (("h", "H_t"), ("c", "C_t")):
            if kind not in ref[l]:
                assert (f"L{l}", symbol) not in rows.index
                continue
            X = ref[l][kind].numpy()
            np.testing.assert_allclose(lc.states[f"layer{l}.{kind}"], X, atol=1e-5)
            row = rows.loc[(f"L{l}", symbol)]
            assert row["mean |value|"] == pytest.approx(np.abs(X).mean(), abs=1e-6)
            assert row["std"] == pytest.approx(X.std(), abs=1e-6)
            a, b = X[1:], X[:-1]
            r = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(X.shape[1])
                 if a[:, j].std() > 0 and b[:, j].std() > 0]
            assert row["lag-1 autocorrelation"] == pytest.approx(np.mean(r), abs=1e-5)
            lam = np.linalg.eigvalsh(np.cov(X.T))
            assert row["effective dimensions"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-4)


def test_gradient_curves_per_layer_match_autograd():
    model = tiny_model("gru", 2, hidden=10)
    curves = layer_gradient_curves(model, SMALL_TEXT, max_chars=30)
    text = SMALL_TEXT[-30:]
    ref = cell_reference(model, text, [len(text) - 2])
    for c in curves:
        expected = ref[c.layer][:len(text) - 1].norm(dim=1).numpy()      # t = 0 … T−2, distance T−2 … 0
        np.testing.assert_allclose(c.norms, expected, rtol=1e-9, atol=1e-14)
        assert list(c.distance) == list(range(len(text) - 2, -1, -1))
        d, y = np.arange(1, len(text) - 1), np.log10(expected[::-1][1:])
        assert c.factor == pytest.approx(10 ** np.polyfit(d, y, 1)[0], rel=1e-8)


# ---------------------------------------------------------------------------------------- the view
@pytest.fixture
def app(monkeypatch):
    monkeypatch.delenv("RNNVIZ_CHECKPOINT_DIR", raising=False)     # the shipped checkpoints
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=120)


def test_the_view_shows_every_layer_of_the_3_layer_rnn(app):
    at = open_view(app, "app_pages/compare.py", text=TEXT, **{"cmp.what": "layers",
                                                              "cmp.deep": "timemachine-rnn-3layer"})
    assert at.radio(key="c_what").value == "layers" and at.selectbox(key="c_deep").value == "timemachine-rnn-3layer"
    model = rnnviz.load_model("timemachine-rnn-3layer")
    ref = _reference_states(model, TEXT)
    df = at.dataframe[0].value
    assert list(df["layer"]) == ["L0", "L1", "L2"] and set(df["state"]) == {"H_t"}
    for l in range(3):
        X = ref[l]["h"].numpy()
        assert df["mean |value|"][l] == pytest.approx(np.abs(X).mean(), abs=1e-5)
        assert df["saturated (|value| > 0.9)"][l] == pytest.approx((np.abs(X) > 0.9).mean(), abs=1e-3)
        assert 0 < df["per-step factor (fit)"][l] < 2 and math.isfinite(df["steps to shrink 100×"][l])
    figs = chart_specs(at)
    heat = next(f for f in figs if [t["type"] for t in f["data"]] == ["heatmap"] * 3)
    assert [t["name"] for t in heat["data"]] == ["layer 2", "layer 1", "layer 0"]      # the top layer first
    top = heat["data"][0]                       # one point: layer 2, its first listed unit, step 5
    unit = int(re.search(r"\[(\d+)\]", top["y"][0]).group(1))
    assert top["y"][0].startswith("L2 h[")
    assert decode(top["z"])[0][5] == pytest.approx(float(ref[2]["h"][5, unit]), abs=1e-5)
    grads = [f for f in figs if f["layout"].get("yaxis", {}).get("type") == "log"]
    assert len(grads) == 1 and [t["name"] for t in grads[0]["data"]] == ["layer 2", "layer 1", "layer 0"]


def test_the_lstm_shows_its_memory_cell_and_the_mode_survives_in_the_link(app):
    at = open_view(app, "app_pages/compare.py", text=TEXT, **{"cmp.what": "layers",
                                                              "cmp.deep": "timemachine-lstm-2layer"})
    df = at.dataframe[0].value
    assert list(zip(df["layer"], df["state"])) == [("L0", "H_t"), ("L0", "C_t"), ("L1", "H_t"), ("L1", "C_t")]
    assert all(0 < f < 1.5 for f in df["per-step factor (fit)"])        # H_t and C_t rows both fitted
    at.radio(key="c_kind").set_value("c").run()
    assert not at.exception
    heat = next(f for f in chart_specs(at) if [t["type"] for t in f["data"]] == ["heatmap"] * 2)
    assert heat["data"][0]["y"][0].startswith("L1 c[")
    assert at.query_params["cmp.what"] in ("layers", ["layers"]) and at.query_params["cmp.kind"] in ("c", ["c"])
    at.radio(key="c_what").set_value("models").run()                   # back to checkpoints
    assert not at.exception and at.multiselect(key="c_models").value
