"""#28 presenter mode: the deck format (app_pages/ui/deck.py) and the presenter in AppTest.

A deck line is a link of the app; every line goes through the registry of views and the URL
validation layer. A malformed deck is named line by line and not played; a bad value is named as
the page names it and its slide opens with the default; a slide opens exactly as its link does,
whatever the session held before; "Add this view as a slide" writes the view's link."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from app_pages.ui.deck import DECKS_DIR, parse_deck, parse_line, shipped_decks, slide_line
from app_pages.ui.params import VIEWS
from tests.conftest import REPO
from tests.test_app_lecture import app_env  # noqa: F401 (fixture: tiny timemachine-rnn/gru/lstm)

BY_PATH = {v.url_path: v for v in VIEWS}


def test_a_deck_of_links_titles_and_comments():
    deck = parse_deck("# my lecture\n"
                      "\n"
                      "lesson?lesson.act=tanh   The toy network, with tanh\n"
                      "   # an indented comment\n"
                      "http://teacher.example:8501/base/gradients?gr.scale=1.5&ckpt=timemachine-rnn\n"
                      "/?text=the+time&hs.what=h\ttab-separated title\n")
    assert deck.playable and not deck.warnings
    assert [(s.line, s.view.url_path, s.title) for s in deck.slides] == [
        (3, "lesson", "The toy network, with tanh"), (5, "gradients", "Gradients"),
        (6, "", "tab-separated title")]
    assert deck.slides[1].query == (("gr.scale", "1.5"), ("ckpt", "timemachine-rnn"))
    assert deck.slides[2].query == (("text", "the time"), ("hs.what", "h"))
    # a deck plays in lecture mode, whatever its links say
    assert parse_deck("/?lecture=0").slides[0].lecture_query() == [("lecture", "1")]


MALFORMED = """# a deck with one mistake of each kind
lesson?lesson.act=tanh   fine
gradient?gr.scale=1.5   a view that does not exist
gradients?lesson.act=relu   a key of another view
gradients?gr.scal=1.5   a key of no view
ftp://example.org/gradients   not a link of this app
gradients?gr.scale=9   a value out of range
"""


def test_a_malformed_deck_names_each_line():
    deck = parse_deck(MALFORMED)
    assert not deck.playable
    by_line = {int(e.split(":")[0].removeprefix("line ")): e for e in deck.errors}
    assert sorted(by_line) == [3, 4, 5, 6], deck.errors
    assert "unknown view 'gradient'" in by_line[3] and "gradients \\(Gradients\\)" in by_line[3]
    assert "lesson.act is not a setting of Gradients" in by_line[4]
    assert "unknown key 'gr\\.scal'" in by_line[5]          # Markdown-escaped, as the page shows it
    assert "not a link of this app" in by_line[6]
    # the bad value: named as the page names a bad link value (its range: params.py, 0.05–5)
    assert deck.warnings == ["line 7: gr.scale=9 (must be a number 0.05–5)"]


def test_empty_and_oversized_decks_are_refused():
    assert parse_deck("# only comments\n\n").errors == [
        "the deck has no slides: one link a line (lines starting with # are comments)"]
    assert "characters" in parse_deck("/\n" * 150_000).errors[0]


def test_a_value_whose_range_needs_the_page_is_left_to_the_page():
    # pr.step's range is the text's length: only the page can check it (and names it there)
    slide, errors, warnings = parse_line(1, "predictions?pr.step=99999")
    assert slide is not None and not errors and not warnings
    # a checkpoint is checked against the ones given
    _, _, warnings = parse_line(2, "/?ckpt=nope", {"ckpts": ["timemachine-rnn"]})
    assert warnings == ["line 2: ckpt=nope (must be one of timemachine-rnn)"]


def test_a_view_written_as_a_slide_reads_back_the_same():
    query = [("ckpt", "timemachine-rnn"), ("text", "a b&c=d #e"), ("gr.scale", "0.5"), ("lecture", "1")]
    line = slide_line(BY_PATH["gradients"], query, "What if  W_hh\nwere smaller")
    slide, errors, _ = parse_line(9, line)
    assert not errors and slide.view.url_path == "gradients"
    assert slide.query == tuple(query[:3]) and slide.title == "What if W_hh were smaller"


def test_the_shipped_deck_follows_the_seed():
    assert "d2l-6.3" in shipped_decks()
    deck = parse_deck((DECKS_DIR / "d2l-6.3.txt").read_text(encoding="utf-8"),
                      {"ckpts": ["timemachine-rnn", "timemachine-gru", "timemachine-lstm"]})
    assert deck.playable and not deck.warnings, (deck.errors, deck.warnings)
    assert 10 <= len(deck.slides) <= 14
    views = [s.view.url_path for s in deck.slides]
    # toy network → H_t → softmax at one step → "the time machine by" → gradients → four problems → compare
    order = ["lesson", "", "predictions", "generate", "gradients", "lesson", "compare"]
    at = 0
    for path in order:
        at = views.index(path, at)
    assert views[-1] == "compare" and dict(deck.slides[-1].query)["cmp.models"].count(",") == 2


# ---------------------------------------------------------------- the presenter, in AppTest

def _app() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _play(at: AppTest, text: str | None = None) -> AppTest:
    if text is not None:
        at.selectbox(key="deck_pick").set_value("(your own deck)").run()
        at.text_area(key="deck_text").set_value(text)
    at.button(key="deck_play").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _bar(at: AppTest) -> str:
    return next((m.value for m in at.markdown if m.value.startswith("**Slide")), "")


def test_the_shipped_deck_plays_from_the_sidebar(app_env):
    at = _play(_app())
    assert _bar(at).startswith("**Slide 1 of 12**")
    assert at.toggle(key="lecture").value is True and at.query_params["lecture"] == "1"
    assert at.radio(key="l_act").value == "relu" and at.selectbox(key="ckpt").value == "timemachine-rnn"
    at.button(key="presenter_next").click().run()
    assert not at.exception and _bar(at).startswith("**Slide 2 of 12**")
    assert at.radio(key="l_act").value == "tanh"
    at.button(key="presenter_prev").click().run()
    assert _bar(at).startswith("**Slide 1 of 12**") and at.radio(key="l_act").value == "relu"
    at.button(key="presenter_end").click().run()
    assert not _bar(at) and not at.exception
    at.number_input(key="deck_start").set_value(99)                 # after a reload: go on from there
    _play(at)
    assert _bar(at).startswith("**Slide 12 of 12**") and at.title[0].value == "Compare checkpoints"


def test_a_slide_opens_as_its_link_whatever_the_session_held(app_env):
    at = _app()
    at.switch_page("app_pages/gradients.py")
    at.run()
    at.slider(key="g_scale").set_value(2.0).run()
    at.selectbox(key="ckpt").set_value("timemachine-gru").run()
    _play(at, "gradients?gr.len=40   knobs at their defaults\n"
              "gradients?gr.len=40&gr.scale=9   a bad value\n")
    assert at.slider(key="g_scale").value == 1.0                     # the default, not the session's 2.0
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"       # the app's default model
    assert at.number_input(key="g_len").value == 40
    at.button(key="presenter_next").click().run()
    named = [c.value for c in at.caption if "Ignored from the link" in c.value]
    assert named and "gr.scale=9 (must be a number 0.05–5)" in named[0]   # as the deck's warning said
    assert any("line 2: gr.scale=9" in w.value for w in at.warning)


def test_a_malformed_deck_is_named_and_nothing_else_breaks(app_env):
    at = _play(_app(), MALFORMED)
    errors = "\n".join(e.value for e in at.error)
    for n in (3, 4, 5, 6):
        assert f"line {n}:" in errors
    assert not _bar(at) and at.title[0].value == "Hidden states"
    at.switch_page("app_pages/predictions.py")
    at.run()
    assert not at.exception and at.title[0].value == "Predictions"


def test_add_this_view_as_a_slide_writes_its_link(app_env):
    at = _app()
    at.switch_page("app_pages/predictions.py")
    at.query_params["pr.k"] = "3"
    at.run()
    at.button(key="deck_add").click().run()
    text = at.text_area(key="deck_text").value
    deck = parse_deck(text)
    assert deck.playable and len(deck.slides) == 1, (text, deck.errors)
    slide = deck.slides[0]
    assert slide.view.url_path == "predictions" and ("pr.k", "3") in slide.query
    # the own deck survives picking another deck and coming back
    at.selectbox(key="deck_pick").set_value("d2l-6.3").run()
    at.selectbox(key="deck_pick").set_value("(your own deck)").run()
    assert at.text_area(key="deck_text").value == text
    _play(at)
    assert _bar(at).startswith("**Slide 1 of 1**") and at.number_input(key="pr_k").value == 3


@pytest.mark.parametrize("text", ["", "\x00\x01", "?" * 5000 + " t", "/?" + "&".join(["text=a"] * 3)])
def test_odd_decks_never_raise(text):
    deck = parse_deck(text)
    assert deck.errors or deck.slides


def test_the_docs_example_deck_plays_and_the_image_ships_the_decks():
    doc = (REPO / "docs" / "LECTURE.md").read_text(encoding="utf-8")
    example = re.search(r"^```\n(# My lecture.*?)^```", doc, re.M | re.S).group(1)
    deck = parse_deck(example, {"ckpts": ["timemachine-rnn"]})
    assert deck.playable and not deck.warnings and len(deck.slides) == 3, (deck.errors, deck.warnings)
    assert "COPY decks/ decks/" in (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")


def test_the_state_a_slide_forgets_is_the_state_those_modules_keep():
    """presenter._LINK_STATE names session keys of url.py and sidebar.py: renamed there, a slide
    would silently keep what an earlier view left."""
    from app_pages.ui import presenter, sidebar, url
    assert {url._KEPT, sidebar._BEFORE} <= set(presenter._LINK_STATE)              # noqa: SLF001
    source = (REPO / "app_pages" / "ui" / "sidebar.py").read_text(encoding="utf-8")
    for key in set(presenter._LINK_STATE) - {url._KEPT, sidebar._BEFORE}:          # noqa: SLF001
        assert f'"{key}"' in source, key
