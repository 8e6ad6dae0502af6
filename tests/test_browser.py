"""The explorer in a real browser: Streamlit on 127.0.0.1, Debian's Chromium driven by Playwright.

Type a text into the sidebar, wait for every chart, hover a heatmap cell and check that the hover
label shows the number rnnviz computes for that step and unit; screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

import rnnviz
from tools.bench_page import digest
from playwright.sync_api import expect

from tools.page_js import PAINT_JS, RUN_OVER_JS, SETTLED_JS, UPDATE_JS, update_arg

from .conftest import REPO, StreamlitServer, tiny_model

ARTIFACTS = REPO / "artifacts"
VOCAB_TEXT = "the time machine by h. g. wells\nabcdefghijklmnopqrstuvwxyz,;:'!?-"
TEXT = "the time  machine\nby h. g. wells"
#: Generous: a busy machine makes a wait longer, never a failure (every wait follows the page).
TIMEOUT = 180_000
#: A drawn chart on the page (the first run of a freshly opened page has reached the browser).
DRAWN_JS = "() => !!document.querySelector('.js-plotly-plot .main-svg')"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser_ckpts")
    model = tiny_model("lstm", 1, 16, text=VOCAB_TEXT, seed=3)
    rnnviz.save_checkpoint(model, d / "timemachine-lstm.safetensors", {"corpus": "test", "val_loss": 1.5})
    srv = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(d)})
    yield srv, model
    srv.stop()


@pytest.fixture
def tall_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    pg = context.new_page()
    yield pg
    context.close()


def commit_text(page, text: str, min_charts: int = 1) -> None:
    """Type ``text`` once the page is drawn and idle (typed while the first run was still drawing,
    a text could be overwritten), commit it, and wait until every chart shows it, painted."""
    page.wait_for_function(DRAWN_JS, timeout=TIMEOUT, polling=100)
    page.wait_for_function(RUN_OVER_JS, arg=None, timeout=TIMEOUT, polling=100)
    area = page.get_by_label("Text", exact=True)
    area.fill(text)
    expect(area).to_have_value(text)
    area.press("Control+Enter")
    page.wait_for_function(UPDATE_JS, arg=update_arg(digest(text), min_charts), timeout=TIMEOUT, polling=100)
    page.evaluate(PAINT_JS)


def cell_position(page, chart: str, column: int, row: int) -> tuple[float, float]:
    """Viewport coordinates of the centre of heatmap cell (column, row) of the chart ``chart``."""
    return tuple(page.evaluate("""([chart, col, row]) => {
        const gd = [...document.querySelectorAll('.js-plotly-plot')]
            .find(e => e.layout && e.layout.meta && e.layout.meta.chart === chart);
        gd.scrollIntoView({block: 'center'});
        const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const fl = gd._fullLayout;
        return [box.left + fl.xaxis.c2p(col), box.top + fl.yaxis.c2p(row)];
    }""", [chart, column, row]))


def test_type_text_hover_heatmap_value_and_screenshot(server, tall_page):
    srv, model = server
    page = tall_page
    page.goto(srv.url + "/")
    page.wait_for_selector("h1", timeout=TIMEOUT)
    commit_text(page, TEXT)
    # the heatmap drawn with the typed text: one column per character
    page.wait_for_function("""n => [...document.querySelectorAll('.js-plotly-plot')].some(e => e.layout
        && e.layout.meta && e.layout.meta.chart === 'hs_heatmap' && e.data[0].x.length === n)""",
                           arg=len(TEXT), timeout=TIMEOUT, polling=100)
    trace = rnnviz.trace(model, TEXT)
    assert page.locator("h1").first.inner_text() == "Hidden states"
    # one drawn chart per chart element (an in-place chart remounted while Plotly.js was still
    # loading once drew into its old, detached copy as well: two charts in one element)
    assert page.evaluate("""() => [...document.querySelectorAll('[data-testid="stBidiComponentRegular"],'
        + '[data-testid="stPlotlyChart"]')].filter(b => !b.querySelector('.rnnviz-text'))
        .every(b => b.querySelectorAll('.js-plotly-plot').length
        + (b.matches('.js-plotly-plot') ? 1 : 0) === 1)""")

    # the heatmap has one column per typed character, whitespace shown as symbols
    labels = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .find(e => e.layout.meta.chart === 'hs_heatmap').data[0].x""")
    assert len(labels) == len(TEXT) and "3:␣" in labels and "17:⏎" in labels

    rows = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .find(e => e.layout.meta.chart === 'hs_heatmap').data[0].y""")   # unit labels, view's order
    for step, unit in ((4, 3), (17, 15)):
        x, y = cell_position(page, "hs_heatmap", step, rows.index(f"L0 h[{unit}]"))
        page.mouse.move(x, y)
        label = page.locator(".hoverlayer .hovertext").first
        label.wait_for(timeout=TIMEOUT)
        text = label.text_content()
        expected = float(trace["layer0.h"][step, unit])
        value = float(re.search(r"H = (-?\d+\.\d+)", text).group(1))
        assert value == pytest.approx(expected, abs=6e-5), text
        assert f"L0 h[{unit}]" in text and f"{step}:" in text
        page.mouse.move(5, 5)

    # the Plotly modebar (PNG download) is always shown
    assert page.locator(".modebar-btn[data-title^='Download plot']").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    x, y = cell_position(page, "hs_heatmap", 9, 0)
    page.mouse.move(x, y)
    page.locator(".hoverlayer .hovertext").first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "browser-hidden-states.png"))


def test_predictions_and_step_through_render(server, tall_page):
    srv, _ = server
    page = tall_page
    page.goto(srv.url + "/predictions?text=" + "hello%20world%2C%20hello%20time")
    page.wait_for_selector("h1", timeout=TIMEOUT)
    page.wait_for_function(UPDATE_JS, arg=update_arg(digest("hello world, hello time"), 3), timeout=TIMEOUT, polling=100)
    page.evaluate(PAINT_JS)
    assert page.get_by_text("Perplexity").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "browser-predictions.png"))
    page.goto(srv.url + "/step?text=hello%20world&st.t=4")
    page.wait_for_selector("h1", timeout=TIMEOUT)
    page.wait_for_function(UPDATE_JS, arg=update_arg(digest("hello world"), 3), timeout=TIMEOUT, polling=100)
    page.evaluate(PAINT_JS)
    assert "Step 4" in page.locator("[data-testid='stMarkdownContainer']").all_inner_texts().__str__()
    page.screenshot(path=str(ARTIFACTS / "browser-step-through.png"))


def test_widget_choices_survive_new_text(server, tall_page):
    """Widgets keep their state when the text changes (the browser's raw widget values included)."""
    srv, _ = server
    page = tall_page
    page.goto(srv.url + "/")
    page.wait_for_selector("h1", timeout=TIMEOUT)
    commit_text(page, "first text here")
    page.get_by_text("C_t (memory cell)").click()
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(
        e => e.layout && e.layout.meta && e.layout.meta.chart === 'hs_heatmap'
             && e.data[0].colorbar.title.text === 'C')""", timeout=TIMEOUT, polling=100)
    commit_text(page, "second text, still C")
    assert not page.locator("[data-testid='stException']").all_inner_texts()
    bar = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .find(e => e.layout.meta.chart === 'hs_heatmap').data[0].colorbar.title.text""")
    assert bar == "C"
    assert "hs.what=c" in page.url


def test_text_independent_charts_are_kept_across_text_commits(server, tall_page):
    """The W_hh spectrum does not depend on the text: after a new text the browser keeps the drawn
    chart (same DOM node, never redrawn), while the norm curve shows the new text."""
    srv, _ = server
    page = tall_page
    page.goto(srv.url + "/gradients")
    page.wait_for_selector("h1", timeout=TIMEOUT)
    commit_text(page, "first text for gradients", min_charts=3)
    find = """key => [...document.querySelectorAll('.js-plotly-plot')]
        .find(e => e.layout && e.layout.meta && e.layout.meta.chart === key)"""
    page.evaluate(f"""() => {{ const find = {find};
        for (const k of ['g_eig', 'g_sv', 'g_curve']) {{
            const e = find(k); e.__mark = k;
            e.on('plotly_afterplot', () => {{ e.__redrawn = true; }}); }} }}""")
    commit_text(page, "a second, different text", min_charts=3)
    state = page.evaluate(f"""() => {{ const find = {find};
        return Object.fromEntries(['g_eig', 'g_sv', 'g_curve'].map(k => {{ const e = find(k);
            return [k, [e.__mark === k, e.__redrawn === true, e.layout.meta.rnnviz || null,
                        e.layout.meta.text_independent === true]]; }})); }}""")
    assert state["g_eig"] == [True, False, None, True]
    assert state["g_sv"] == [True, False, None, True]
    assert state["g_curve"][2] == digest("a second, different text")   # redrawn or replaced, with the new text
    assert not page.locator("[data-testid='stException']").all_inner_texts()


def wait_idle(page, selector: str) -> None:
    """Wait until ``selector`` is on the page, the script run is over and nothing stale is left."""
    page.wait_for_selector(selector, timeout=TIMEOUT)
    page.wait_for_function(SETTLED_JS, timeout=TIMEOUT, polling=200)
    page.evaluate(PAINT_JS)


def test_copied_link_reproduces_the_lesson_tab_and_names_a_bad_value(server, browser):
    """Pick the Lesson's tab (c) and a setting of tab (b); the copied link, opened in a fresh browser
    context (with a hostile value added), shows the same tab and setting and names the bad value."""
    srv, _ = server
    first = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = first.new_page()
    page.goto(srv.url + "/lesson?lesson.h=6")
    wait_idle(page, "[data-testid='stTab']")
    page.get_by_role("tab", name=re.compile(r"^\(c\)")).click()
    # the first run already wrote tab (a) into the URL: wait for the click's run to write (c)
    page.wait_for_function("() => (new URLSearchParams(location.search).get('lesson.tab') || '')"
                           ".startsWith('(c)')", timeout=TIMEOUT, polling=100)
    link = page.url
    first.close()
    assert "lesson.h=6" in link and "lesson.steps=100" in link
    fresh = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = fresh.new_page()
    page.goto(link.replace("lesson.steps=100", "lesson.steps=1e-320"))
    wait_idle(page, "text=Ignored from the link")
    selected = page.get_by_role("tab", selected=True).inner_text()
    assert selected.startswith("(c)"), selected
    assert "lesson.steps=1e" in page.get_by_text("Ignored from the link").inner_text()
    assert not page.locator("[data-testid='stException']").all_inner_texts()
    page.get_by_role("tab", name=re.compile(r"^\(b\)")).click()
    slider = page.locator("[data-testid='stSlider']").filter(has_text="hidden units")
    assert slider.locator("[data-testid='stSliderThumbValue']").inner_text() == "6"
    fresh.close()
