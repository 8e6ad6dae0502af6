"""#28 "follow one unit everywhere", in Chromium: a click on a Units bar pins that unit (unit= in the
link); Step-through then shows it first, a click on another Step-through row pins that one, and
Hidden states highlights it (★ on its heatmap row)."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlparse

from tools.page_js import SETTLED_JS

from .conftest import wait_for_app

TIMEOUT = 120_000
TEXT = "the time machine by h g wells. the time traveller was explaining a recondite matter to us."

#: The drawn chart under ``key`` (its layout.meta.chart): null until Plotly has drawn it.
_CHART = """key => [...document.querySelectorAll('.js-plotly-plot')]
  .find(e => e.layout && e.layout.meta && e.layout.meta.chart === key && e.querySelector('.main-svg'))"""

#: Where a row of a chart is on the screen: (x, y) of the middle of row ``label`` (a bar: its middle).
ROW_AT = """([key, label]) => {
  const gd = (""" + _CHART + """)(key);
  gd.scrollIntoView({block: 'center'});
  const bars = [...gd.querySelectorAll('.bars .point path')];
  const i = gd.data[0].y.indexOf(label);
  if (bars.length) { const r = bars[i].getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }
  const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
  return [r.x + r.width / 2, r.y + gd._fullLayout.yaxis.d2p(label)];
}"""


#: Bring chart ``key`` into the window (a chart out of sight waits to be drawn): true once it is drawn.
_SHOWN = """key => {
  const box = [...document.querySelectorAll('[data-rnnviz-pending], .js-plotly-plot')].find(e => {
    const meta = e.dataset.rnnvizPending ? JSON.parse(e.dataset.rnnvizPending) : (e.layout || {}).meta;
    return meta && meta.chart === key;
  });
  if (box) box.scrollIntoView({block: 'center'});
  return !!(""" + _CHART + """)(key);
}"""


def _drawn(page, key: str):
    page.wait_for_function(_SHOWN, arg=key, timeout=TIMEOUT, polling=250)
    page.wait_for_function(SETTLED_JS, timeout=TIMEOUT)
    return page.evaluate(f"() => {{ const g = ({_CHART})({key!r}); "
                         "return {y: g.data[0].y, ticks: g.layout.yaxis.ticktext || []}; }")


#: No part of the page is still waiting for its heavy result (app_pages/ui/later.py's placeholder):
#: the verdict panel above the bars fills in by a rerun (its box keeps its height, so the bars stay
#: put: test_later_browser.py; a user still waits for the page to be complete before aiming).
_FILLED = """() => ![...document.querySelectorAll('[data-testid="stAlert"]')]
  .some(e => e.innerText.includes('It appears here when it is ready'))"""


def _settled_page(page) -> None:
    """What a user waits for before aiming at a bar: every part drawn, nothing left to move it."""
    page.wait_for_function(_FILLED, timeout=TIMEOUT, polling=250)
    page.wait_for_function(SETTLED_JS, timeout=TIMEOUT)


def _click_row(page, key: str, label: str) -> None:
    x, y = page.evaluate(ROW_AT, [key, label])
    page.mouse.click(x, y)
    page.wait_for_function("name => new URLSearchParams(location.search).get('unit') === name",
                           arg=label, timeout=TIMEOUT)


def _view(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    wait_for_app(page, TIMEOUT)


def test_click_a_units_bar_then_step_through_and_hidden_states_follow(streamlit_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Units measured on the sidebar text (units.src=typed): no corpus sample to index first.
    page.goto(f"{streamlit_server.url}/units?ckpt=timemachine-rnn&units.src=typed&text={quote(TEXT)}",
              timeout=TIMEOUT)
    _drawn(page, "u_rank")
    _settled_page(page)
    bars = _drawn(page, "u_rank")["y"]
    name = bars[-1]                                     # the top bar (bars are listed bottom up)
    _click_row(page, "u_rank", name)

    _view(page, "Step-through")
    rows = _drawn(page, "st_terms")["y"]
    assert rows[0] == name                              # the pinned unit first
    other = rows[2]
    _click_row(page, "st_terms", other)                 # a Step-through row pins its unit
    page.wait_for_function(f"() => ({_CHART})('st_terms').data[0].y[0] === {other!r}", timeout=TIMEOUT)

    _view(page, "Hidden states")
    heat = _drawn(page, "hs_heatmap")
    assert any("★ pinned" in t and other in t for t in heat["ticks"]), heat["ticks"]
    assert parse_qs(urlparse(page.url).query)["unit"] == [other]
    assert not errors, errors
