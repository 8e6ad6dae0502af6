"""Non-finite is a state, not a crash (issue 27, finding 3): every view, with checkpoints that
overflow, shows a note naming the step that overflowed instead of raising.

Checkpoints: a ReLU RNN whose W_hh has spectral radius 100 (its states pass float32's 3.4e38 after
~20 steps, then inf − inf = NaN), and for every cell finite output weights of ±3e38 (the logits
overflow to ±inf, the softmax to NaN).
"""

from __future__ import annotations

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz.overflow import first_overflow

from .conftest import app_on, tiny_model

TEXT = "the time machine by h. g. wells " * 3
PAGES = ["app_pages/hidden_states.py", "app_pages/predictions.py", "app_pages/gradients.py",
         "app_pages/step_through.py", "app_pages/compare.py", "app_pages/units.py",
         "app_pages/lesson.py", "app_pages/generate.py"]


def _exploding_relu():
    model = tiny_model("rnn_relu", 1, 8, text=TEXT)
    with torch.no_grad():
        layer = model.layers[0]
        layer.weight_hh_l0.copy_(100 * torch.eye(8))
        layer.bias_hh_l0.fill_(1.0)
    return model


def _huge_output(cell: str):
    """Output weights and biases of ±3e38 (finite), signed so that the first step's logits pass
    float32's maximum: O_0[v] = ±3e38 · (1 + Σ_j |H_0[j]|)."""
    model = tiny_model(cell, 1, 8, text=TEXT)
    h0 = rnnviz.trace(model, TEXT[:1])["layer0.h"][0]
    rows = torch.where(torch.arange(model.output.weight.shape[0]) % 2 == 0, 3e38, -3e38)
    with torch.no_grad():
        model.output.weight.copy_(rows[:, None] * torch.sign(h0)[None, :])
        model.output.bias.copy_(rows)
    return model


CKPTS = {"overflow-relu": _exploding_relu,
         **{f"overflow-out-{c}": (lambda c=c: _huge_output(c)) for c in rnnviz.cells.SPECS}}


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("overflow_ckpts")
    for name, make in CKPTS.items():
        model = make()
        assert first_overflow(rnnviz.trace(model, TEXT).cache) is not None, name
        rnnviz.save_checkpoint(model, d / f"{name}.safetensors", {"corpus": "test"})
    return d


def _visit(page: str, params: dict, ckpt_dir, monkeypatch) -> AppTest:
    """Open the app on ``params`` (a link), then switch to ``page`` with the same link; no exception."""
    at = app_on(ckpt_dir, monkeypatch)
    at.query_params.update(params)
    at.run()
    at.switch_page(page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("ckpt", list(CKPTS))
@pytest.mark.parametrize("page", PAGES)
def test_every_view_survives_overflow_with_a_note(page, ckpt, ckpt_dir, monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _visit(page, {"text": TEXT, "ckpt": ckpt, "gen.prefix": "the ", "gen.len": "40"}, ckpt_dir, monkeypatch)
    notes = " ".join(str(e.value) for kind in ("caption", "info", "warning", "markdown")
                     for e in at.get(kind))
    assert "overflow" in notes, notes[:2000]


@pytest.mark.parametrize("page,params", [
    ("app_pages/hidden_states.py", {"hs.order": "pattern"}),
    ("app_pages/hidden_states.py", {"hs.order": "clustered", "hs.unit": "3"}),
    ("app_pages/hidden_states.py", {"hs.what": "gates", "ckpt": "overflow-out-lstm"}),
    ("app_pages/hidden_states.py", {"hs.what": "c", "ckpt": "overflow-out-lstm"}),
    ("app_pages/step_through.py", {"st.t": "60"}),
    ("app_pages/predictions.py", {"pr.k": "3"}),
    ("app_pages/generate.py", {"gen.temp": "0"}),
    ("app_pages/units.py", {"units.tab": "Projection"}),
    ("app_pages/units.py", {"units.tab": "Ablation"}),
    ("app_pages/units.py", {"units.tab": "Counterfactual"}),
], ids=lambda p: p if isinstance(p, str) else ",".join(f"{k}={v}" for k, v in p.items()))
def test_overflow_with_other_settings(page, params, ckpt_dir, monkeypatch):
    at = _visit(page, {"text": TEXT, "ckpt": "overflow-relu", "gen.prefix": "the ", **params}, ckpt_dir, monkeypatch)
