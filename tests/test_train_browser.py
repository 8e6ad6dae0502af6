"""The Train view in a real browser: paste a text, train a small model, watch the loss curve and
the samples grow, stop, then open the trained model in Hidden states and Gradients."""

from __future__ import annotations

import pytest

import rnnviz

from tools.page_js import ARM_JS, RUN_ENDED_JS, SETTLED_JS

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
    # the run log makes every script run end with a marker of this session's run count (committed)
    srv = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(d), "RNNVIZ_RUN_LOG": str(d / "runs.log")})
    yield srv
    srv.stop()


def committed(page, act) -> None:
    """Do ``act`` (an edit that reruns the script) and wait until its run is over. Typed into while
    an earlier run was still drawing, the numbers were sometimes not applied under CPU contention
    (1 test run in 3-5 with a busy core), so each edit waits for the last one's run."""
    page.evaluate(ARM_JS)
    act()
    page.wait_for_function(RUN_ENDED_JS, timeout=TIMEOUT, polling=50)
    page.wait_for_function(SETTLED_JS, timeout=TIMEOUT, polling=100)


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    committed(page, lambda: (box.fill(str(value)), box.press("Enter")))
    assert box.input_value() == str(value)


def test_train_stop_and_open_in_views(server, page):
    page.goto(server.url + "/train")
    page.wait_for_selector("h1:has-text('Train')", timeout=TIMEOUT)
    page.get_by_text("Paste a text", exact=True).click()
    area = page.get_by_label("Text to train on", exact=True)
    area.fill(TEXT)
    committed(page, lambda: area.press("Control+Enter"))
    page.get_by_text("Train / validation").wait_for(timeout=TIMEOUT)
    set_number(page, "Sequence length T", 8)
    set_number(page, "Batch size B", 4)
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function(LOSS_POINTS_JS, arg=5, timeout=TIMEOUT, polling=250)
    page.wait_for_function(LOSS_POINTS_JS, arg=30, timeout=TIMEOUT, polling=250)  # the curve grows
    page.get_by_text("step     25").first.wait_for(timeout=TIMEOUT)              # a later sample
    page.screenshot(path=str(ARTIFACTS / "browser-train.png"))
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_role("button", name="Open in Hidden states").click(timeout=TIMEOUT)
    page.wait_for_selector("h1:has-text('Hidden states')", timeout=TIMEOUT)
    assert "(trained)" in page.locator("[data-testid='stSidebar']").inner_text()
    assert not page.locator("[data-testid='stException']").all_inner_texts()
    page.get_by_role("link", name="Gradients").click()
    page.wait_for_selector("h1:has-text('Gradients')", timeout=TIMEOUT)
    assert "(trained)" in page.locator("[data-testid='stSidebar']").inner_text()
    assert not page.locator("[data-testid='stException']").all_inner_texts()
