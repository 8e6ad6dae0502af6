"""Charts that update in place (issue 14): app_pages/ui/plotly_component.plotly_chart_inplace in a
real browser (Debian's Chromium), on the tiny app tests/inplace_app.py. A new figure updates the
drawn chart through Plotly.react: the same DOM node, new data, the user's zoom kept; it looks as
st.plotly_chart(fig, theme=None) draws the same figure; Plotly.js comes from this server."""

from __future__ import annotations

import pytest

from .conftest import REPO, AppServer

playwright = pytest.importorskip("playwright.sync_api")

CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
  inplace: e.classList.contains('rnnviz-inplace'), chart: e.layout.meta.chart, n: e.layout.meta.n,
  mark: e.__mark || null, y: e.data[0].y ? Array.from(e.data[0].y).slice(0, 8) : null,
  look: JSON.stringify([e._fullLayout.paper_bgcolor, e._fullLayout.plot_bgcolor, e._fullLayout.font,
                        e._fullLayout.colorway, e._fullData.map(t => t.colorscale || t.line.color)]),
  xrange: e._fullLayout.xaxis.range.slice(), autorange: e._fullLayout.xaxis.autorange}))"""
READY = """n => { const els = [...document.querySelectorAll('.js-plotly-plot')];
  return els.length === 4 && els.every(e => e.layout && e.layout.meta.n === n && e.querySelector('.main-svg')); }"""


@pytest.fixture(scope="module")
def server():
    srv = AppServer(REPO / "tests" / "inplace_app.py", timeout=60)
    yield srv
    srv.stop()


def zoom_line_chart(page) -> None:
    """Drag a zoom box over the in-place line chart, as a user would."""
    box = page.locator(".rnnviz-inplace .nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.3, y0 + box["height"] * 0.6, steps=8)
    page.mouse.up()


def test_update_in_place_keeps_node_and_zoom(server, tmp_path, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    try:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        scripts: list[str] = []
        page.on("request", lambda r: scripts.append(r.url) if "plotly" in r.url else None)
        page.goto(server.url + "/?ref=1")
        page.wait_for_function(READY, arg=0, timeout=60_000)
        before = page.evaluate(CHARTS)
        assert [c["inplace"] for c in before] == [True, True, False, False]
        # Same look as st.plotly_chart(theme=None): colours, fonts, backgrounds, colorscales.
        assert before[0]["look"] == before[2]["look"] and before[1]["look"] == before[3]["look"]
        # Plotly.js from this server (the installed plotly package), nowhere else.
        assert any(u.startswith(server.url + "/component/") and u.endswith("/plotly.min.js") for u in scripts)
        assert all(u.startswith(server.url) for u in scripts), scripts
        zoom_line_chart(page)
        page.wait_for_function("() => document.querySelector('.rnnviz-inplace')._fullLayout.xaxis.autorange === false")
        zoomed = page.evaluate(CHARTS)[0]["xrange"]
        page.evaluate("() => document.querySelectorAll('.js-plotly-plot').forEach((e, i) => { e.__mark = 'node' + i; })")
        page.screenshot(path=str(tmp_path / "before.png"), full_page=True)
        page.get_by_role("button", name="next").click()
        page.wait_for_function(READY, arg=1, timeout=60_000)
        after = page.evaluate(CHARTS)
        page.screenshot(path=str(tmp_path / "after.png"), full_page=True)
    finally:
        page.close()
    # In place: the same DOM nodes, new data; st.plotly_chart's charts were drawn anew.
    assert [c["mark"] for c in after] == ["node0", "node1", None, None]
    assert after[0]["y"] != before[0]["y"] and after[0]["n"] == 1
    # The user's zoom survived the update (uirevision); the reference chart was not zoomed.
    assert after[0]["autorange"] is False and after[0]["xrange"] == pytest.approx(zoomed)
    assert before[0]["xrange"] != pytest.approx(zoomed)
    assert not errors, errors
