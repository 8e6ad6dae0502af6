"""The largest models the checkpoint parser accepts (float16, h up to 4,096, 1 and 8 layers) on
every view: each view finishes within its time budget and says what the cost model reduced
("Reduced because …") or refused ("Not computed …") instead of running for minutes.

The budget is cut to RNNVIZ_REQUEST_SECONDS = 0.3 s here so the test stays short; the same code
scales to the server's default (rnnviz.serving.cost.REQUEST_SECONDS)."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz import ModelConfig, build_model
from rnnviz.serving import cost
from rnnviz.serving.deadline import WALL_FACTOR
from rnnviz import units as U
from app_pages.ui.params import VIEWS
from tools.heavy import TOKENS, largest_hidden, save_f16

from .conftest import REPO, tiny_model

BUDGET = 0.3
#: One cell per model at 1 layer, and the LSTM (the costliest cell per unit) at 8 layers.
MODELS = [("rnn_tanh", 1), ("rnn_relu", 1), ("gru", 1), ("lstm", 1), ("lstm", 8)]
#: Extra URL parameters per view (a view not listed opens with none); Train trains a model of its own.
EXTRA = {"app_pages/compare.py": [{"cmp.models": "big,tiny"}],
         "app_pages/units.py": [{"units.src": "typed"}, {"units.tab": "Ablation"}]}
PAGES = [(v.page, params) for v in VIEWS if v.page != "app_pages/train.py" for params in EXTRA.get(v.page, [{}])]
NOTES = ("Reduced because", "Not computed", "stopped after", "the server is busy")


@pytest.fixture
def heavy_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("RNNVIZ_REQUEST_SECONDS", str(BUDGET))
    rnnviz.save_checkpoint(tiny_model("gru", 1, 8), tmp_path / "tiny.safetensors")
    st.cache_data.clear()
    st.cache_resource.clear()
    U.INDEXES.clear()
    yield tmp_path
    st.cache_data.clear()
    st.cache_resource.clear()
    U.INDEXES.clear()


def _texts(at: AppTest) -> str:
    return "\n".join(str(el.value) for kind in ("info", "warning", "caption", "markdown")
                     for el in getattr(at, kind))


@pytest.mark.parametrize("cell,layers", MODELS, ids=[f"{c}-{n}L" for c, n in MODELS])
def test_largest_accepted_model_on_every_view(heavy_dir, cell, layers):
    h = largest_hidden(cell, layers)
    model = build_model(ModelConfig(cell, h, layers, TOKENS), seed=0)
    path = heavy_dir / "big.safetensors"
    save_f16(model, path)
    del model
    assert rnnviz.load_model(path).config.hidden_size == h       # the parser accepts it
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.query_params["ckpt"] = "big"
    at.run()
    # the slowest view: the unit index, once, stopped at the latest by its wall-clock cap
    limit = WALL_FACTOR * cost.deadline_seconds("index", BUDGET) + 5
    timings = {}
    for page, params in PAGES:
        at.switch_page(page)
        at.query_params.update({"ckpt": "big", **params})
        t0 = time.perf_counter()
        at.run()
        timings[page + str(params)] = seconds = time.perf_counter() - t0
        assert not at.exception, (page, [e.value[:300] for e in at.exception])
        assert seconds < limit, (page, seconds)
        text = _texts(at)
        assert any(note in text for note in NOTES), (page, text[:2000])
    print(f"{cell} {layers}L h={h}:", {k: round(v, 2) for k, v in timings.items()})


def test_a_request_the_estimate_gets_wrong_is_stopped_and_the_page_says_so(heavy_dir, monkeypatch):
    """With the estimates zeroed nothing is thinned: the deadline alone must stop the work."""
    monkeypatch.setattr(cost, "SECONDS_PER_MAC", {})
    monkeypatch.setattr(cost, "FIXED_PER_H3", {})
    monkeypatch.setenv("RNNVIZ_REQUEST_SECONDS", "0.1")         # deadline: 1 s per request
    rnnviz.save_checkpoint(build_model(ModelConfig("rnn_tanh", 1024, 1, TOKENS), seed=0),
                           heavy_dir / "big.safetensors")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.query_params.update({"ckpt": "big", "text": "the time machine by h. g. wells " * 20})
    at.run()
    at.switch_page("app_pages/gradients.py")
    at.query_params.update({"ckpt": "big", "gr.len": "600"})
    t0 = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t0
    assert not at.exception, [e.value[:300] for e in at.exception]
    assert "its 1.0 s time budget" in _texts(at)                 # its CPU time, or the wall cap
    assert seconds < 4 * (WALL_FACTOR * cost.deadline_seconds("", 0.1) + 1) + 5   # four requests at most
