"""The Train view in a real browser (#28 "done means"): paste a text, train a small model, visit two
other views while it trains, come back — the run and its panel are there and it went on; stop, then
open both the latest and the best-validation weights in Hidden states, each labelled with its step."""

from __future__ import annotations

import re

import pytest

import rnnviz

from playwright.sync_api import expect

from tools.page_js import RUN_OVER_JS

from .conftest import REPO, StreamlitServer, tiny_model
from .test_app_train import TEXT

ARTIFACTS = REPO / "artifacts"
TIMEOUT = 180_000
# The loss chart may start below the window: in-place charts are drawn when in sight, so it is
# scrolled to, as a user watching the run would (app_pages/ui/plotly_inplace.js).
LOSS_POINTS_JS = """(n) => {
  const waiting = [...document.querySelectorAll('[data-rnnviz-pending]')]
      .find(e => (JSON.parse(e.dataset.rnnvizPending) || {}).chart === 'train-loss');
  if (waiting) waiting.scrollIntoView();
  return [...document.querySelectorAll('.js-plotly-plot')].some(
    e => e.layout && e.layout.meta && e.layout.meta.chart === 'train-loss' && e.data[0].x.length >= n); }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_browser_ckpts")
    rnnviz.save_checkpoint(tiny_model("lstm", 1, 8, text=TEXT), d / "timemachine-lstm.safetensors",
                           {"corpus": "test"})
    srv = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(d)})
    yield srv
    srv.stop()


def idle(page) -> None:
    """Wait until the status widget no longer says the script is running (what the user sees)."""
    page.wait_for_function(RUN_OVER_JS, arg=None, timeout=TIMEOUT, polling=100)


def train_button(page, enabled: bool):
    """Wait until the page shows one Train button (a rerun briefly shows the old one beside the
    new), enabled or not; return it."""
    page.wait_for_function("""enabled => { const b = document.querySelectorAll('.st-key-tr_train button');
        return b.length === 1 && b[0].disabled === !enabled; }""", arg=enabled, timeout=TIMEOUT, polling=100)
    return page.locator(".st-key-tr_train button")


def set_number(page, label: str, value: int) -> None:
    """Type ``value`` into a number input once the page is idle, and see it shown after the run it
    starts. Under CPU contention a value typed while an earlier run was still drawing was sometimes
    replaced by the old one when that run's page arrived: then it is typed again, as a user would."""
    box = page.get_by_label(label, exact=True)
    for _ in range(5):
        idle(page)
        box.fill(str(value))
        box.press("Enter")
        idle(page)
        if box.input_value() == str(value):
            break
    expect(box).to_have_value(str(value), timeout=TIMEOUT)


def nav(page, title: str) -> None:
    """Go to another view by its sidebar link, as a user does, and wait for its title."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=TIMEOUT)


def open_weights(page, which: str) -> int:
    """Click "Open <which> (step N)"; wait for Hidden states showing that model; return N."""
    button = page.get_by_role("button", name=re.compile(rf"^Open {which} \(step [\d,]+\)$"))
    button.wait_for(timeout=TIMEOUT)
    step = int(re.search(r"step ([\d,]+)", button.inner_text()).group(1).replace(",", ""))
    button.click()
    page.wait_for_selector("h1:has-text('Hidden states')", timeout=TIMEOUT)
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar).to_contain_text(f"step {step:,} {which}: pasted text", timeout=TIMEOUT)
    assert not page.locator("[data-testid='stException']").all_inner_texts()
    return step


def test_train_visit_two_views_come_back_and_open_both_weights(server, page):
    page.goto(server.url + "/train")
    page.wait_for_selector("h1:has-text('Train')", timeout=TIMEOUT)
    idle(page)
    page.get_by_text("Paste a text", exact=True).click()
    area = page.get_by_label("Text to train on", exact=True)
    area.wait_for(timeout=TIMEOUT)                             # the run of that click has drawn
    train_button(page, enabled=False)                          # nothing pasted yet: refused
    # The knobs first, the text last: the run the text starts carries every widget's value, and the
    # Train button it draws (enabled once there is a text) starts a training with them.
    set_number(page, "Sequence length T", 8)
    set_number(page, "Batch size B", 4)
    set_number(page, "Optimiser steps", 20_000)                # still training when we come back
    idle(page)
    area.fill(TEXT)
    area.press("Control+Enter")
    page.get_by_text("Train / validation").wait_for(timeout=TIMEOUT)
    idle(page)
    train = train_button(page, enabled=True)
    for label, value in (("Sequence length T", "8"), ("Batch size B", "4")):
        expect(page.get_by_label(label, exact=True)).to_have_value(value)
    train.click()
    page.wait_for_function(LOSS_POINTS_JS, arg=5, timeout=TIMEOUT, polling=250)
    nav(page, "Hidden states")                                 # the class looks elsewhere…
    nav(page, "Gradients")
    nav(page, "Train")                                         # …and comes back: the run is there
    expect(page.get_by_label("Batch size B", exact=True)).to_have_value("4", timeout=TIMEOUT)
    page.wait_for_function(LOSS_POINTS_JS, arg=30, timeout=TIMEOUT, polling=250)  # it went on
    # a sample after the first, saying which weights wrote it, from the marked prefix
    page.get_by_text(re.compile(r"step +[1-9][\d,]* · latest +│ «the »")).first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "browser-train.png"))
    # the view's Stop (its key's class), not the status widget's, shown while the live panel reruns
    page.locator(".st-key-tr_stop").get_by_role("button", name="Stop").click()
    latest = open_weights(page, "latest")
    nav(page, "Train")
    best = open_weights(page, "best validation")
    assert best <= latest
