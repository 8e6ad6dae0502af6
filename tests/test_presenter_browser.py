"""#28 presenter mode, in a real browser: the shipped §6.3 deck (decks/d2l-6.3.txt) plays end to end
in lecture mode at 1920×1080, driven by the keys a clicker sends.

One server (conftest's, with the shipped checkpoints), one browser page: the deck is started from the sidebar's Presenter mode panel; every
slide is reached by PageDown (one by ArrowRight; ArrowRight on a slider moves the slider instead),
and at the end PageUp goes back one. On every
slide, once the page shows it ("Slide n of N"): the URL holds the slide's link (each of its keys and
values), every chart is drawn (scrolled to, one by one), the knobs the link sets are on the page and enlarged
(lecture mode's type), nothing was ignored from the link, no exception element, no browser error.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app_pages.ui.deck import DECKS_DIR, SIDEBAR_KEYS, parse_deck
from app_pages.ui.params import PARAMS
from tools.page_js import RUN_OVER_JS, STATE_JS

DECK = parse_deck((DECKS_DIR / "d2l-6.3.txt").read_text(encoding="utf-8"))
SLIDE_S = 300                 # generous: the suite may share the 2 cores with other work
#: Streamlit's own type is 14 px on a 16 px root; lecture mode's root is 22 px (lecture.LECTURE_CSS).
ENLARGED_PX = 18

#: The page shows slide ``n`` and is done with it: the bar names it, no script run, nothing stale,
#: and every chart of the page is drawn (a chart out of sight may keep its figure for when it is
#: scrolled to: app_pages/ui/plotly_inplace.js marks it data-rnnviz-pending).
SHOWN_JS = """([n, total]) => {
  const bar = document.querySelector('.st-key-nav-presenter');
  if (!bar || !bar.innerText.includes(`Slide ${n} of ${total}`)) return false;
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  if (w && /Running|Stop/.test(w.innerText)) return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')) return false;
  const charts = [...document.querySelectorAll('.rnnviz-inplace')];
  const drawn = c => !!c.querySelector('.main-svg') && !c.parentElement.dataset.rnnvizDrawing;
  const waits = c => c.parentElement.dataset.rnnvizPending !== undefined;
  return charts.every(c => drawn(c) || waits(c)) && !!document.querySelector('h1');
}"""

#: Every chart of the page (outside closed tabs) drawn: brings the next chart still waiting to be scrolled to into sight
#: (in-place charts draw what is in sight, app_pages/ui/plotly_inplace.js), until none waits; then
#: back to the top of the page.
DRAW_ALL_JS = """() => {
  // charts in a closed tab (not laid out) are not shown, so not drawn
  const charts = [...document.querySelectorAll('.rnnviz-inplace')].filter(c => c.getClientRects().length > 0);
  if (charts.some(c => c.parentElement.dataset.rnnvizDrawing)) return false;
  const waiting = charts.find(c => c.parentElement.dataset.rnnvizPending !== undefined || !c.querySelector('.main-svg'));
  if (waiting) { waiting.parentElement.scrollIntoView({block: 'center'}); return false; }
  window.scrollTo(0, 0);
  return true;
}"""

#: (drawn charts, [key, shown, font px] of each keyed widget asked for) on the page.
LOOK_JS = """(keys) => [
  document.querySelectorAll('.rnnviz-inplace .main-svg, .js-plotly-plot .main-svg').length,
  keys.map(k => {
    const e = document.querySelector('.st-key-' + k);
    if (!e) return [k, false, 0];
    const label = e.querySelector('label, p, [role="tab"]') || e;
    return [k, e.getBoundingClientRect().height > 0, parseFloat(getComputedStyle(label).fontSize)];
  })]"""


def _watch(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)[:300]))
    # A deep link's first requests look for the server under the view's path (404, then found at /):
    # not errors (tests/test_url_fuzz_browser.py).
    page.on("console", lambda m: errors.append(m.text[:300])
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    return errors


def _shown(page, n: int, server=None) -> None:
    try:
        page.wait_for_function(SHOWN_JS, arg=[n, len(DECK.slides)], timeout=SLIDE_S * 1000, polling=150)
    except PlaywrightTimeout:
        pytest.fail(f"slide {n} of {len(DECK.slides)} not shown after {SLIDE_S} s; the page is at "
                    f"{page.url}; the view shows: {page.inner_text('[data-testid=stMain]')[:1500]!r}; "
                    f"page state: {page.evaluate(STATE_JS)}; the server's log ends: "
                    f"{server.log_tail() if server else '(not kept)'}")


def _check_slide(page, n: int, errors: list[str]) -> None:
    slide = DECK.slides[n - 1]
    page.wait_for_function(DRAW_ALL_JS, timeout=SLIDE_S * 1000, polling=150)
    where = f"slide {n} ({slide.title})"
    query = page.evaluate("() => [...new URLSearchParams(location.search)]")
    for key, value in slide.query:
        assert [key, value] in query, (where, key, value, query)
    assert ["lecture", "1"] in query, where
    assert page.locator("[data-testid='stException']").count() == 0, (
        where, page.locator("[data-testid='stException']").first.inner_text()[:500])
    assert page.get_by_text("Ignored from the link").count() == 0, where
    knobs = ["ckpt"] + [PARAMS[k].widget for k, _ in slide.query if k not in SIDEBAR_KEYS]
    drawn, seen = page.evaluate(LOOK_JS, knobs)
    for key, visible, px in seen:
        assert visible, f"{where}: knob {key} not on the page"
        assert px >= ENLARGED_PX, f"{where}: knob {key} at {px} px, not enlarged"
    if slide.view.url_path != "lesson":          # the toy network and the four problems: tables
        assert drawn >= 1, f"{where}: no chart drawn"
    assert not errors, (where, errors)


def _arrow_moves_the_slider(page, n: int) -> None:
    """On a slider, → moves the slider, not the deck (a knob stays live); PageDown, pressed next with
    the slider still focused, goes on (the next slide then opens on its own link's value)."""
    slider = page.locator(".st-key-gen_temp input[type=range]")
    slider.focus()
    before = page.evaluate("() => new URLSearchParams(location.search).get('gen.temp')")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(v) => new URLSearchParams(location.search).get('gen.temp') !== v",
                           arg=before, timeout=SLIDE_S * 1000, polling=150)
    _shown(page, n)
    assert slider.evaluate("e => e === document.activeElement"), "the slider lost the focus"


def test_the_shipped_deck_plays_in_lecture_mode(streamlit_server, browser):
    server = streamlit_server          # the app with the shipped checkpoints the deck names
    assert DECK.playable and 10 <= len(DECK.slides) <= 14, (DECK.errors, len(DECK.slides))
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(SLIDE_S * 1000)      # clicks and key presses wait on a busy machine too
    page = context.new_page()
    errors = _watch(page)
    t0 = time.monotonic()
    try:
        # opened where the deck starts (its model is loaded once, for the first slide too)
        first = DECK.slides[0]
        page.goto(f"{server.url}/{first.view.url_path}?{urlencode(first.lecture_query())}",
                  timeout=SLIDE_S * 1000)
        page.wait_for_function(RUN_OVER_JS, arg="h1", timeout=SLIDE_S * 1000, polling=200)
        page.get_by_text("Presenter mode", exact=True).click()
        page.get_by_role("button", name=re.compile("Play the deck")).click()
        for n in range(1, len(DECK.slides) + 1):
            _shown(page, n, server)
            _check_slide(page, n, errors)
            if n == 7:
                _arrow_moves_the_slider(page, n)
            if n < len(DECK.slides):
                page.keyboard.press("ArrowRight" if n == 6 else "PageDown")
        page.keyboard.press("PageUp")
        _shown(page, len(DECK.slides) - 1)
        _check_slide(page, len(DECK.slides) - 1, errors)
    finally:
        print(f"deck played in {time.monotonic() - t0:.1f} s")
        context.close()
