"""Charts that update in place (issue 14): app_pages/ui/plotly_component.plotly_chart_inplace in a
real browser (Debian's Chromium), on the tiny app tests/inplace_app.py. A new figure updates the
drawn chart through Plotly.react: the same DOM node, new data, the user's zoom kept; it looks as
st.plotly_chart(fig, theme=None) draws the same figure; Plotly.js comes from this server."""

from __future__ import annotations

import pytest

from .conftest import SLOW_MS, REPO, AppServer, chart_specs, read_payload

playwright = pytest.importorskip("playwright.sync_api")

CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
  inplace: e.classList.contains('rnnviz-inplace'), chart: e.layout.meta.chart, n: e.layout.meta.n,
  mark: e.__mark || null, y: e.data[0].y ? Array.from(e.data[0].y).slice(0, 8) : null,
  look: JSON.stringify([e._fullLayout.paper_bgcolor, e._fullLayout.plot_bgcolor, e._fullLayout.font,
                        e._fullLayout.colorway, e._fullData.map(t => t.colorscale || t.line.color)]),
  xrange: e._fullLayout.xaxis.range.slice(), autorange: e._fullLayout.xaxis.autorange}))"""
# Four charts drawn with update n, and no in-place draw under way (a zoom made during a Plotly.react
# still running was lost when it finished: data-rnnviz-drawing, app_pages/ui/plotly_inplace.js).
READY = """n => { const els = [...document.querySelectorAll('.js-plotly-plot')];
  return els.length === 4 && els.every(e => e.layout && e.layout.meta.n === n && e.querySelector('.main-svg'))
      && !document.querySelector('[data-rnnviz-drawing], [data-rnnviz-pending]'); }"""


def test_figure_travels_as_bytes_and_reads_back():
    """The component's data are bytes (no JSON-in-JSON): the figure's JSON and the config come back
    as given, and the data carry the figure's JSON text unescaped."""
    import json

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "tests" / "inplace_app.py"), default_timeout=300)
    at.run()
    assert not at.exception
    protos = [el.proto for el in at.main if el.type == "bidi_component"]
    assert [p.WhichOneof("data") for p in protos] == ["bytes", "bytes"]
    head, spec = read_payload(protos[0].bytes)
    assert head["config"] == {"displaylogo": False, "displayModeBar": True}
    from app_pages.ui.plotly_component import PLOTLY_JS
    assert head["plotly"] == f"/app/static/{PLOTLY_JS}" and (REPO / "tests" / "static" / PLOTLY_JS).is_file()
    # What a chart out of sight says it waits with, read without parsing the figure.
    assert head["meta"] == {"n": 0, "chart": "line"} and head["height"] == 340
    assert b'"meta":{"n":0,"chart":"line"}' in protos[0].bytes  # not escaped into a JSON string
    line, heat = chart_specs(at)  # as the app built them (tests/inplace_app.py, n = 0)
    assert line["layout"]["meta"] == {"n": 0, "chart": "line"} and line["layout"]["height"] == 340
    assert list(line["data"][0]["y"]) == [((i * 3) % 11) - 5 for i in range(40)]
    assert heat["layout"]["meta"] == {"n": 0, "chart": "heat"}
    assert json.loads(spec) == line


@pytest.fixture(scope="module")
def server():
    srv = AppServer(REPO / "tests" / "inplace_app.py", timeout=180)
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
        page.wait_for_function(READY, arg=0, timeout=SLOW_MS)
        before = page.evaluate(CHARTS)
        assert [c["inplace"] for c in before] == [True, True, False, False]
        # Same look as st.plotly_chart(theme=None): colours, fonts, backgrounds, colorscales.
        assert before[0]["look"] == before[2]["look"] and before[1]["look"] == before[3]["look"]
        # Plotly.js from this server (the installed plotly package), nowhere else.
        from app_pages.ui.plotly_component import PLOTLY_JS
        assert server.url + "/app/static/" + PLOTLY_JS in scripts
        assert all(u.startswith(server.url) for u in scripts), scripts
        zoom_line_chart(page)
        page.wait_for_function("() => document.querySelector('.rnnviz-inplace')._fullLayout.xaxis.autorange === false")
        zoomed = page.evaluate(CHARTS)[0]["xrange"]
        page.evaluate("() => document.querySelectorAll('.js-plotly-plot').forEach((e, i) => { e.__mark = 'node' + i; })")
        page.screenshot(path=str(tmp_path / "before.png"), full_page=True)
        page.get_by_role("button", name="next").click()
        page.wait_for_function(READY, arg=1, timeout=SLOW_MS)
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


FULL = """() => { const gd = document.querySelector('.rnnviz-inplace'); const r = gd.getBoundingClientRect();
  const hit = document.elementFromPoint(innerWidth - 30, innerHeight - 30);  // below the chart in the page
  return {left: r.left, top: r.top, w: r.width, h: r.height, width: gd._fullLayout.width,
          height: gd._fullLayout.height, n: gd.layout.meta.n, covers: gd.contains(hit),
          full: gd.parentElement.classList.contains('rnnviz-fullscreen'), vw: innerWidth, vh: innerHeight}; }"""
FULLSCREEN_BUTTON = '.modebar-btn[data-title="Fullscreen (Esc to leave)"]'


def wait_height(page, height: float) -> dict:
    """Wait until the in-place line chart is drawn ``height`` px high and as wide as its element
    (Plotly.Plots.resize follows the element's width after a 100 ms debounce)."""
    page.wait_for_function(f"""() => {{ const gd = document.querySelector('.rnnviz-inplace');
        return gd._fullLayout.height === {height} && gd._fullLayout.width === gd.clientWidth; }}""",
                           timeout=SLOW_MS)
    return page.evaluate(FULL)


def test_fullscreen_button_lays_the_chart_over_the_window(server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    try:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/?ref=1")
        page.wait_for_function(READY, arg=0, timeout=SLOW_MS)
        before = page.evaluate(FULL)
        button = page.locator(".rnnviz-inplace").first.locator(FULLSCREEN_BUTTON)
        # st.plotly_chart's charts have no such button (their fullscreen is Streamlit's toolbar).
        assert page.locator(FULLSCREEN_BUTTON).count() == 2
        button.click()
        pad = 16
        full = wait_height(page, 760 - 2 * pad)
        # A figure update while in fullscreen (the page's button is under the chart: click it from JS).
        page.evaluate("() => [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'next').click()")
        page.wait_for_function(READY, arg=1, timeout=SLOW_MS)
        updated = page.evaluate(FULL)
        page.keyboard.press("Escape")
        back = wait_height(page, 340)
        button.click()
        again = wait_height(page, 760 - 2 * pad)
        button.click()
        toggled = wait_height(page, 340)
    finally:
        page.close()
    assert not before["full"] and not before["covers"] and before["height"] == 340
    # Fullscreen: the chart fills the window less the padding, drawn at that size, over the page.
    assert full["full"] and full["covers"]
    assert (full["left"], full["top"]) == (pad, pad)
    assert full["vw"] - 2 * pad - 20 <= full["w"] <= full["vw"] - 2 * pad and full["width"] == full["w"]
    assert full["h"] == pytest.approx(760 - 2 * pad, abs=1) and full["width"] > before["width"]
    assert updated["n"] == 1 and updated["full"] and updated["height"] == 760 - 2 * pad
    # Escape and the button again put it back at the figure's own size, in the page.
    for b in (back, toggled):
        assert not b["full"] and not b["covers"] and b["height"] == 340 and b["width"] == before["width"]
    assert again["full"] and again["height"] == 760 - 2 * pad
    assert not errors, errors


SIGHT = """() => [...document.querySelectorAll('[data-testid="stBidiComponentRegular"]')].map(b => {
  const w = b.querySelector('[data-rnnviz-pending]'), gd = b.querySelector('.rnnviz-inplace');
  const drawn = gd.classList.contains('js-plotly-plot') && gd.layout ? gd : null;
  return {pending: w ? JSON.parse(w.dataset.rnnvizPending) : null, drawn: drawn ? drawn.layout.meta : null,
          mark: drawn ? drawn.__mark || null : null, z0: drawn && drawn.data[0].z ? Array.from(drawn.data[0].z[0]).slice(0, 6) : null,
          top: b.getBoundingClientRect().top, height: b.getBoundingClientRect().height}; })"""


def test_charts_out_of_sight_wait_until_scrolled_to(server, browser):
    """A chart below the window is not drawn on arrival: its frame keeps the figure (and says which,
    data-rnnviz-pending) at the chart's height, and draws it when scrolled into sight — the newest
    figure, on the same DOM node, so a text update costs only the charts the user sees."""
    page = browser.new_page(viewport={"width": 1000, "height": 420})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_function("() => { const e = document.querySelector('.js-plotly-plot');"
                               " return e && e.layout.meta.n === 0 && !!e.querySelector('.main-svg'); }",
                               timeout=SLOW_MS)
        line, heat = page.evaluate(SIGHT)
        assert line["drawn"] == {"n": 0, "chart": "line"} and line["pending"] is None
        assert heat["top"] > 420 and heat["drawn"] is None and heat["pending"] == {"n": 0, "chart": "heat"}
        assert heat["height"] == pytest.approx(260, abs=2)          # the chart's height, kept for it
        page.get_by_role("button", name="next").click()
        both_sent = "n => {{ const [line, heat] = ({})(); return (line.drawn || {{}}).n === n && (heat.pending || {{}}).n === n; }}"
        page.wait_for_function(both_sent.format(SIGHT), arg=1, timeout=SLOW_MS)
        line, heat = page.evaluate(SIGHT)
        assert heat["drawn"] is None and heat["pending"] == {"n": 1, "chart": "heat"}
        page.locator("[data-rnnviz-pending]").scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 2", timeout=SLOW_MS)
        heat = page.evaluate(SIGHT)[1]
        assert heat["pending"] is None and heat["drawn"] == {"n": 1, "chart": "heat"}
        assert heat["z0"] == [1] * 6                               # row 0 of update 1's z
        page.evaluate("() => { document.querySelectorAll('.js-plotly-plot')[1].__mark = 'heat'; }")
        # Out of sight again: the next figure waits; the drawn chart stays as it was until seen.
        page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
        page.wait_for_function(f"() => ({SIGHT})()[1].top > 420")
        page.get_by_role("button", name="next").click()
        page.wait_for_function(both_sent.format(SIGHT), arg=2, timeout=SLOW_MS)
        heat = page.evaluate(SIGHT)[1]
        assert heat["drawn"]["n"] == 1 and heat["pending"] == {"n": 2, "chart": "heat"}
        page.locator("[data-rnnviz-pending]").scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot')[1].layout.meta.n === 2",
                               timeout=SLOW_MS)
        heat = page.evaluate(SIGHT)[1]
        assert heat["mark"] == "heat" and heat["pending"] is None and heat["z0"] == [2] * 6
    finally:
        page.close()
    assert not errors, errors


def test_install_plotly_js_copies_the_installed_bundle_once(tmp_path):
    """The charts' Plotly.js is the installed plotly package's, copied into <app folder>/static/
    (served by Streamlit's static file serving), readable by any server user, no temporary file
    left; a copy of another size (another plotly) is replaced."""
    import stat

    from app_pages.ui import plotly_component as pc

    target = pc.install_plotly_js(tmp_path)
    assert target == tmp_path.resolve() / "static" / pc.PLOTLY_JS
    assert target.read_bytes() == pc.PLOTLY_SOURCE.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == [pc.PLOTLY_JS]
    other = tmp_path / "other"
    (other / "static").mkdir(parents=True)
    (other / "static" / pc.PLOTLY_JS).write_text("old")
    assert pc.install_plotly_js(other).read_bytes() == pc.PLOTLY_SOURCE.read_bytes()
    assert pc.plotly_js_url() == f"/app/static/{pc.PLOTLY_JS}"


def test_the_base_url_path_is_read_once_per_process(monkeypatch):
    """st.get_option takes Streamlit's one config lock, a queue for every script thread of a busy
    server (#27): the base URL path of Plotly.js is read once, not once per chart."""
    import types

    from app_pages.ui import plotly_component as pc

    reads: list[str] = []

    def get_option(key: str):
        reads.append(key)
        return "/course/"

    pc.plotly_js_url.cache_clear()
    monkeypatch.setattr(pc, "st", types.SimpleNamespace(get_option=get_option))
    try:
        urls = {pc.plotly_js_url() for _ in range(5)}
    finally:
        pc.plotly_js_url.cache_clear()          # the next caller reads the real option
    assert urls == {f"/course/app/static/{pc.PLOTLY_JS}"} and reads == ["server.baseUrlPath"]
