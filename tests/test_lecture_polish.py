"""#28 lecture polish: Lesson (c)'s labels never overlap, the Train view's intro is an explanation
(hidden in lecture mode), the notes under a view's title are too, lecture type follows the
projector's height, and Gradients in lecture mode keeps its what-if knobs in one row so its first
chart is above the fold on a 1280 × 720 projector."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from app_pages.ui import lecture
from rnnviz import lesson as L
from rnnviz.plots import lesson as PL
from tests.conftest import REPO, SMALL_TEXT, tiny_model

from .test_app_lecture import app_env  # noqa: F401


def test_forgetting_marks_are_named_in_the_legend_not_on_the_curves():
    f = L.counterfactual_forgetting(tiny_model("rnn_tanh", 1), SMALL_TEXT * 2, 1, "x", threshold=0.01)
    fig = PL.forgetting_figure(f)
    assert f.below_at is not None
    # Labels inside the plot sat on the curves and on each other: none is left there.
    assert not fig.layout.annotations
    names = [s.name for s in fig.layout.shapes if s.showlegend]
    assert names == ["threshold 0.01", f"edit at step 1: {SMALL_TEXT[1]} → x",
                     f"forgotten after {f.steps_to_forget} steps"]
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yanchor == "bottom" and legend.y >= 1   # above the plot
    assert fig.layout.yaxis.automargin and fig.layout.xaxis.automargin   # titles clear of tick labels


def test_bigram_titles_clear_the_modebar_and_the_axis_title_is_not_cut():
    fig = PL.bigram_figure(L.bigram_exact_rnn(SMALL_TEXT))
    assert fig.layout.margin.t >= 60                  # subplot titles below the modebar's row
    assert fig.layout.yaxis.automargin and fig.layout.yaxis.title.text == "previous character"


@pytest.mark.parametrize("height, px", [(1080, 22), (720, 16), (2160, 22), (600, 16)])
def test_lecture_type_follows_the_projectors_height(height, px):
    lo, vh, hi = re.fullmatch(r"clamp\((\d+)px, ([\d.]+)vh, (\d+)px\)", lecture.ROOT_FONT).groups()
    assert f"font-size: {lecture.ROOT_FONT}" in lecture.LECTURE_CSS
    assert round(min(max(float(vh) * height / 100, int(lo)), int(hi))) == px


def _open(view: str, **params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    params = {"text": "The Time Machine, by H. G. Wells", **params}
    at.query_params.update(params)
    at.run()
    at.switch_page(f"app_pages/{view}.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _paths(at: AppTest, kind: str) -> list[tuple[str, list]]:
    """(text, keys of the containers above) of every ``kind`` element (markdown, caption, …)."""
    found = []

    def walk(node, above):
        if getattr(node, "type", None) == kind:
            found.append((str(node.value), above))
        for child in (getattr(node, "children", None) or {}).values():
            walk(child, above + [getattr(node, "key", None)])

    walk(at._tree, [])                                    # noqa: SLF001 (AppTest's own element tree)
    return found


@pytest.mark.parametrize("view, kind, intro", [("train", "markdown", "Train a character-level RNN"),
                                               ("units", "caption", "Find what single hidden units"),
                                               ("compare", "caption", "Cross-entropy, bits/char and")])
def test_a_views_intro_is_an_explanation(app_env, view, kind, intro):          # noqa: F811
    at = _open(view, lecture="1")
    found = [above for text, above in _paths(at, kind) if text.startswith(intro)]
    assert found and any(lecture.is_hidden_key(k) for k in found[0])


def test_notes_under_the_title_are_left_to_the_teacher(app_env):   # noqa: F811
    from rnnviz import ModelConfig, Vocab, build_model, save_checkpoint
    tokens = tuple(Vocab.from_text("abcdefghijklmnopqrstuvwxyz ").tokens)
    d2l = build_model(ModelConfig("rnn_tanh", 8, 1, tokens, preprocessing="d2l"), seed=0)
    save_checkpoint(d2l, app_env / "timemachine-rnn.safetensors", {"corpus": "tinycorpus"})
    for on in ("0", "1"):
        at = _open("step_through", lecture=on)
        notes = [c.value for c in at.caption if "cleaned the same way" in c.value or "Opened on" in c.value]
        assert len(notes) == (2 if on == "0" else 0), notes


def test_gradients_lecture_mode_keeps_the_what_if_knobs_in_one_row(app_env):   # noqa: F811
    whatif = ("g_scale", "g_act", "g_trunc", "g_clip", "g_clipv")
    at = _open("gradients", lecture="1")
    rows = {}

    def walk(node, row):
        kind = getattr(node, "type", None)
        if kind == "flex_container" and any(getattr(c, "type", None) == "column"
                                            for c in (node.children or {}).values()):
            row = row if row == "expander" else id(node)      # st.columns' row
        if kind == "expander":
            row = "expander"
        key = getattr(node, "key", None)
        if key in whatif + ("g_len", "g_loss", "g_layer"):
            rows[key] = row
        for child in (getattr(node, "children", None) or {}).values():
            walk(child, row)

    walk(at._tree, None)                                  # noqa: SLF001
    assert len({rows[k] for k in whatif}) == 1 and rows["g_scale"] != "expander"
    assert {rows[k] for k in ("g_len", "g_loss", "g_layer")} == {"expander"}
    mine = lambda a: [e for e in a.get("expander") if e.label == "Text, loss and layer"]   # noqa: E731
    assert len(mine(at)) == 1 and not mine(_open("gradients"))


def test_units_sample_line_is_left_to_the_teacher(app_env):          # noqa: F811
    for on, shown in (("0", True), ("1", False)):
        at = _open("units", lecture=on)
        assert any(c.value.startswith("Sample: ") for c in at.caption) == shown
