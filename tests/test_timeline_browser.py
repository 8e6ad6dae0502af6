"""Scrub and play a training timeline in a real browser, on Hidden states and Gradients.

The checkpoint and its timeline are trained by the test (a few seconds, Trainer API) into a temporary
folder that the app reads through RNNVIZ_CHECKPOINT_DIR. Every wait is on what the user sees: the
"Training step …" line, the slider's value, the chart's data, the ▶ Play button."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tools.page_js import PAINT_JS, SETTLED_JS

from .conftest import StreamlitServer
from .test_app_timeline import TEXT, train_with_timeline

TIMEOUT = 180_000
#: The data of the page's first Plotly chart (the heat map / the norm curve), as JSON.
CHART_JS = """() => { const gd = document.querySelector('.js-plotly-plot');
  return gd && gd.data ? JSON.stringify(gd.data.map(d => [d.y, d.z])) : null; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("timeline_browser")
    steps = train_with_timeline(d)
    srv = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(d)})
    yield srv, steps
    srv.stop()


def settled(page) -> None:
    page.wait_for_function(SETTLED_JS, timeout=TIMEOUT, polling=200)
    page.evaluate(PAINT_JS)


def step_line(page, step: int, last: int):
    return page.get_by_text(f"Training step {step:,} of {last:,}", exact=False)


@pytest.mark.parametrize("path", ["", "gradients"])
def test_scrub_and_play_the_timeline(server, browser, path):
    srv, steps = server
    last = steps[-1]
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    try:
        page.goto(f"{srv.url}/{path}?text={quote(TEXT)}")
        step_line(page, last, last).wait_for(timeout=TIMEOUT)
        page.wait_for_function(CHART_JS, timeout=TIMEOUT, polling=200)
        settled(page)
        final_chart = page.evaluate(CHART_JS)
        # scrub: the slider's thumb, to its first position with the keyboard
        slider = page.locator("[data-testid='stSlider']").filter(has_text="Training step")
        slider.get_by_role("slider").press("Home")
        step_line(page, 0, last).wait_for(timeout=TIMEOUT)
        page.wait_for_function("(before) => { const gd = document.querySelector('.js-plotly-plot');"
                               " return gd && gd.data && JSON.stringify(gd.data.map(d => [d.y, d.z])) !== before; }",
                               arg=final_chart, timeout=TIMEOUT, polling=200)
        assert "held-out loss at this step" in page.get_by_text("Training step 0 of").inner_text()
        prefix = "gr" if path else "hs"
        page.wait_for_function(f"() => new URLSearchParams(location.search).get('{prefix}.tstep') === '0'",
                               timeout=TIMEOUT, polling=200)
        # play: it runs through every snapshot to the last and shows ▶ Play again
        page.get_by_role("button", name="▶ Play").click()
        step_line(page, last, last).wait_for(timeout=TIMEOUT)
        page.get_by_role("button", name="▶ Play").wait_for(timeout=TIMEOUT)
        settled(page)
        thumb = slider.locator("[data-testid='stSliderThumbValue']").inner_text()
        assert thumb.replace(",", "") == str(last)
        assert json.loads(page.evaluate(CHART_JS)) == json.loads(final_chart)
        assert not page.locator("[data-testid='stException']").all_inner_texts()
    finally:
        context.close()
