"""#28 item 1: lecture mode is presentation, not amputation. With it on, every knob a demonstration
moves is on the page and outside every container lecture mode hides (explanations, uploads,
exports: app_pages/ui/lecture.HIDDEN_KINDS, the CSS is built from the same list)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_pages.ui import lecture
from rnnviz import save_checkpoint
from tests.conftest import REPO, tiny_model

CORPUS = ("the time traveller (as we shall call him for now) was explaining "
          "a curious idea to us. his dark eyes were bright and eager.\n") * 40

#: view → the keys of the knobs its demonstrations move (the issue's list and the like).
KNOBS = {
    "gradients": ("g_scale", "g_act", "g_trunc", "g_clip", "g_clipv", "g_len", "g_loss"),
    "lesson": ("l_act", "l_preset", "l_wh", "l_ws", "l_wseed", "l_cfpos", "l_cfchar"),
    "units": ("u_feat", "u_regex", "u_by", "u_top"),
    "compare": ("c_models", "c_state", "c_units"),
    "hidden_states": ("hs_layer", "hs_kind", "hs_order", "hs_unit"),
    "predictions": ("pr_k", "pr_log"),
    "step_through": ("st_t", "st_play"),
    "generate": ("gen_prefix", "gen_temp", "gen_len", "gen_topk", "gen_seed"),
}


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    ckpts, corpora = tmp_path / "ckpts", tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "tinycorpus.txt").write_text(CORPUS, encoding="utf-8")
    for name, cell in (("timemachine-lstm", "lstm"), ("timemachine-rnn", "rnn_tanh"), ("timemachine-gru", "gru")):
        save_checkpoint(tiny_model(cell, hidden=8, text=CORPUS), ckpts / f"{name}.safetensors",
                        {"corpus": "tinycorpus", "val_fraction": 0.1})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(corpora))
    return ckpts


def widget_paths(at: AppTest) -> dict[str, list[str | None]]:
    """Every keyed widget → the keys of the containers above it."""
    found: dict[str, list[str | None]] = {}

    def walk(node, above):
        key = getattr(node, "key", None)
        children = getattr(node, "children", None)
        if children:
            for child in children.values():
                walk(child, above + [key])
        elif key is not None:
            found[key] = above

    walk(at._tree, [])                                    # noqa: SLF001 (AppTest's own element tree)
    return found


def test_hidden_kinds_are_the_css():
    for kind in lecture.HIDDEN_KINDS:
        assert f'[class*="st-key-{kind}-"]' in lecture.LECTURE_CSS
    assert "controls" not in lecture.LECTURE_CSS and "nav-" not in lecture.LECTURE_CSS
    assert lecture.is_hidden_key("explain-gradients") and not lecture.is_hidden_key("controls-gradients")


@pytest.mark.parametrize("view", list(KNOBS))
def test_lecture_mode_keeps_every_knob(app_env, view):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    params = {"lecture": "1", "text": "the time machine by h. g. wells"}
    at.query_params.update(params)
    at.run()                                 # st.navigation registers the pages on a run
    at.switch_page(f"app_pages/{view}.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(h.value.startswith("<style>") and "st-key-explain-" in h.value for h in at.get("html"))
    paths = widget_paths(at)
    for key in KNOBS[view]:
        assert key in paths, f"{view}: knob {key} missing in lecture mode"
        hiding = [k for k in paths[key] if lecture.is_hidden_key(k)]
        assert not hiding, f"{view}: knob {key} sits in {hiding}, hidden in lecture mode"
    # uploads and exports are the ones that go
    for key in ("export_trace", "ckpt_upload"):
        if key in paths:
            assert any(lecture.is_hidden_key(k) for k in paths[key]), key
