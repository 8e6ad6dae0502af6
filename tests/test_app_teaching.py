"""Issue 16 (teaching-first) on the pages, with AppTest: lecture mode keeps navigation, the §6.3
views open on the plain RNN, Hidden states opens on a structured order and a unit of *this* text,
and the wording fixes."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from .conftest import REPO
from .test_app_views import TIMEOUT, app, ckpt_dir, open_view, style_bodies  # noqa: F401 (fixtures)


def fresh() -> AppTest:
    """A new browser session (the ``app`` fixture's checkpoint directory stays set)."""
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)


def _blocks(node, out=None) -> list:
    """Every container of the page tree (its proto id ends with the container's key)."""
    out = [] if out is None else out
    proto = getattr(node, "proto", None)
    if proto is not None and getattr(proto, "id", ""):
        out.append(node)
    for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
        _blocks(child, out)
    return out


def _widget_keys(block) -> set[str]:
    keys = set()
    for child in (block.children.values() if isinstance(getattr(block, "children", None), dict) else []):
        key = getattr(child, "key", None)
        if key:
            keys.add(key)
        keys |= _widget_keys(child)
    return keys


def _kept_in_lecture(at) -> set[str]:
    """Keys of the widgets inside navigation containers (kept in lecture mode, as every knob is now:
    tests/test_app_lecture.py)."""
    keys: set[str] = set()
    for block in _blocks(at._tree):
        if "-nav-" in block.proto.id:
            keys |= _widget_keys(block)
    return keys


# ------------------------------------------------------------------ item 4: lecture mode
def test_lecture_mode_keeps_navigation_and_scopes_the_big_fonts(app):
    at = open_view(app, lecture="1", text="the time machine by h. g. wells\n" * 5)
    kept = _kept_in_lecture(at)
    assert {"hs_order", "hs_unit", "hs_width", "hs_layer"} <= kept, kept
    # the teacher still picks the model and types the text in front of the class; the uploader hides
    assert {"ckpt", "preset", "text"} <= kept and "ckpt_upload" not in kept, kept
    css = "\n".join(b for b in style_bodies(at) if "st-key-explain-" in b)
    # #28: lecture mode hides explanations, uploads and exports only; every knob stays
    assert 'st-key-explain-' in css and "st-key-controls" not in css and "nav-" not in css
    # One root font size enlarges text and every knob together (Streamlit sizes them in rem); only
    # public hooks: no Streamlit test ids or internal attributes.
    # (22 px on a 1080-line window, in proportion below it: tests/test_lecture_polish.py)
    assert re.search(r"html \{ font-size: clamp\(16px, [\d.]+vh, 22px\); \}", css), css[:200]
    assert not [b for b in style_bodies(at) if "data-testid" in b or "data-stale" in b]


def test_lecture_mode_keeps_the_predictions_window_and_step(app):
    at = open_view(app, "app_pages/predictions.py", lecture="1", text="abcdefgh " * 20)
    assert {"pr_width", "pr_step", "pr_start"} <= _kept_in_lecture(at)


# ------------------------------------------------------------------ item 5: §6.3 opens on the RNN
def test_lesson_and_step_through_open_on_the_plain_rnn_and_say_why(app):
    at = open_view(app, "app_pages/step_through.py", text="hello world")
    assert at.selectbox(key="ckpt").value == "timemachine-rnn"
    assert any("plain RNN" in c.value for c in at.caption)
    assert not any("Q_t" in l.value for l in at.latex)
    at.switch_page("app_pages/lesson.py").run()
    assert at.selectbox(key="ckpt").value == "timemachine-rnn"
    assert any("§6.3 is about the plain RNN" in c.value for c in at.caption)


def test_an_explicit_model_is_kept_on_the_lesson(app):
    at = open_view(app, "app_pages/step_through.py", text="hello world", ckpt="timemachine-gru")
    assert at.selectbox(key="ckpt").value == "timemachine-gru"
    assert not any("plain RNN" in c.value for c in at.caption)
    at = open_view(fresh(), text="hello world")                    # Hidden states: the LSTM
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    at.selectbox(key="ckpt").set_value("timemachine-gru").run()     # picked by the user
    at.switch_page("app_pages/lesson.py").run()
    assert at.selectbox(key="ckpt").value == "timemachine-gru"


# ------------------------------------------------------------------ items 6 and 10: Hidden states
def test_one_unit_default_follows_a_new_text(app):
    at = open_view(app, text="aaaa bbbb")
    first = at.selectbox(key="hs_unit").value
    texts = ["zzzz", "the time machine by h. g. wells", "........", "hello, world!"]
    seen = {first}
    for text in texts:
        at.text_area(key="text").set_value(text).run()
        from rnnviz import trace, views
        from app_pages.ui.cache import get_model
        tr = trace(get_model("timemachine-lstm"), text)
        assert at.selectbox(key="hs_unit").value == int(views.unit_variance(tr["layer0.h"]).argmax())
        seen.add(at.selectbox(key="hs_unit").value)
    assert len(seen) > 1                       # the default really moved with the text
    at.selectbox(key="hs_unit").set_value(3).run()                   # a pick sticks
    at.text_area(key="text").set_value("another text").run()
    assert at.selectbox(key="hs_unit").value == 3


# ------------------------------------------------------------------ item 10: wording
def test_predictions_does_not_send_the_reader_to_itself(app):
    at = open_view(app, "app_pages/predictions.py", text="The Time, Machine!", ckpt="d2l-lstm")
    captions = " ".join(c.value for c in at.caption)
    assert "see Predictions" not in captions and "box below" in captions
    at = open_view(fresh(), text="The Time, Machine!", ckpt="d2l-lstm")  # other views point there
    assert any("see Predictions" in c.value for c in at.caption)


def test_ordinals_and_the_relu_sentence():
    import inspect

    from rnnviz.gradients import gmap, reading
    assert [gmap._ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd"]
    src = inspect.getsource(gmap) + inspect.getsource(reading)
    assert "{stride}th" not in src and '"ReLU′ is 0 or 1"' not in src


def test_hidden_states_does_not_silently_keep_the_lessons_rnn(app):
    """#28: Hidden states opened on the LSTM, switched to the RNN after a visit to Lesson."""
    at = open_view(app, text="hello world")                                  # Hidden states: the LSTM
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    at.switch_page("app_pages/lesson.py").run()
    assert at.selectbox(key="ckpt").value == "timemachine-rnn"
    for key in list(at.query_params):            # the navigation clears the URL (not a Lesson link)
        del at.query_params[key]
    at.switch_page("app_pages/hidden_states.py").run()
    assert not at.exception
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    # a link from the Lesson that names its model stays on it
    at.switch_page("app_pages/lesson.py").run()
    at.query_params["ckpt"] = "timemachine-rnn"
    at.switch_page("app_pages/gradients.py").run()
    assert at.selectbox(key="ckpt").value == "timemachine-rnn"
