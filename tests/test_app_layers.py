"""All layers in one view (AppTest): Hidden states stacks every layer (and C_t) on one time axis,
Step-through steps through every layer at once."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import rnnviz

from .conftest import app_on, REPO, SMALL_TEXT, chart_specs, open_view, tiny_model

TIMEOUT = 300      # s per AppTest run: a busy machine makes a test slower, never red


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("layer_ckpts")
    for name, cell, layers in (("timemachine-lstm", "lstm", 3), ("timemachine-gru", "gru", 1)):
        rnnviz.save_checkpoint(tiny_model(cell, layers, 8), d / f"{name}.safetensors", {"corpus": "test"})
    return d


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    return app_on(ckpt_dir, monkeypatch)


def _open(at: AppTest, page: str, **query) -> AppTest:
    if page.endswith("step_through.py"):   # its url_path is not its file name: AppTest finds it only
        at.run()                            # once st.navigation has run (the default view drops st.*)
    return open_view(at, page, SMALL_TEXT, **query)


def _titles(spec: dict) -> list[str]:
    return [a["text"] for a in spec["layout"].get("annotations", [])]


def test_hidden_states_stacks_every_layer_and_cell_state(app):
    at = _open(app, "app_pages/hidden_states.py")
    stacked = [c for c in chart_specs(at) if c["layout"]["meta"]["chart"] == "hs_layers"]
    assert len(stacked) == 1
    assert _titles(stacked[0]) == ["layer 2 · H_t", "layer 2 · C_t", "layer 1 · H_t", "layer 1 · C_t",
                                   "layer 0 · H_t", "layer 0 · C_t"]
    one = _open(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT),
                "app_pages/hidden_states.py", ckpt="timemachine-gru")
    assert not any(c["layout"]["meta"]["chart"] == "hs_layers" for c in chart_specs(one))


def test_step_through_every_layer(app):
    at = _open(app, "app_pages/step_through.py", **{"st.layer": "all", "st.t": "3"})
    keys = [c["layout"]["meta"]["chart"] for c in chart_specs(at)]
    assert {"st_onehot_l0", "st_terms_l0", "st_input_l1", "st_terms_l1", "st_input_l2", "st_terms_l2",
            "st_softmax"} <= set(keys)
    checks = [c.value for c in at.caption if "recomputed from the equation" in c.value]
    assert len(checks) == 3 and all(f"textbook_params({l})" in checks[l] for l in range(3))
    assert at.query_params["st.layer"] == "all"
