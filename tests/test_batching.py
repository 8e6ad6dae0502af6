"""A running script's elements reach the browser in a few batches (app_pages/ui/batching.py), in a
real browser on tests/batch_app.py: twelve captions written 50 ms apart arrive in a few moments
with a 0.2 s window (three here; at most five asserted, for a slower machine), and still before
the run is over (a long run shows its progress); in many without it (11–12 here, at least seven
asserted); none is lost or out of order."""

from __future__ import annotations

import pytest

from .conftest import REPO, AppServer

playwright = pytest.importorskip("playwright.sync_api")

#: Record when each caption's text first appears in the page (performance.now(), ms).
OBSERVE = """() => { window.__seen = {};
  const note = () => { for (const el of document.querySelectorAll('[data-testid=stCaptionContainer]')) {
      const t = el.textContent; if (!(t in window.__seen)) window.__seen[t] = performance.now(); } };
  new MutationObserver(note).observe(document.body, {childList: true, subtree: true, characterData: true});
  note(); }"""
DONE = """run => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
  .filter(e => e.textContent.startsWith(`run ${run} `)).length === 12"""


def arrivals(page, run: int) -> list[float]:
    """Times (ms) at which run ``run``'s captions 0…11 first showed, in caption order."""
    seen = page.evaluate("() => window.__seen")
    return [seen[f"run {run} caption {i}"] for i in range(12)]


def moments(times: list[float], gap_ms: float = 25.0) -> int:
    """How many separate moments the times fall in (a gap over ``gap_ms`` starts a new one)."""
    times = sorted(times)
    return 1 + sum(b - a > gap_ms for a, b in zip(times, times[1:]))


def run_twice(browser, window_ms: int) -> list[float]:
    """Open the app, rerun it once (its button), and return the second run's caption arrival times."""
    srv = AppServer(REPO / "tests" / "batch_app.py", env={"RNNVIZ_MESSAGE_BATCH_MS": str(window_ms)},
                    timeout=60)
    page = browser.new_page()
    try:
        page.goto(srv.url)
        page.wait_for_function(DONE, arg=1, timeout=60_000)
        page.evaluate(OBSERVE)
        page.get_by_role("button", name="again").click()
        page.wait_for_function(DONE, arg=2, timeout=60_000)
        return arrivals(page, 2)
    finally:
        page.close()
        srv.stop()


def test_a_runs_elements_arrive_in_a_few_batches(browser):
    batched = run_twice(browser, 200)
    assert batched == sorted(batched)                       # in order
    assert moments(batched) <= 5, batched                   # 0.6 s of captions: 3 batches here
    assert batched[-1] - batched[0] >= 150, batched         # the first went before the run ended
    unbatched = run_twice(browser, 0)
    assert moments(unbatched) >= 7, unbatched               # Streamlit alone: 11–12 here


def test_batching_is_installed_on_this_streamlit():
    """It wraps a private method of Streamlit's; an upgrade that renames it must fail here rather
    than quietly lose the batching."""
    from streamlit.runtime.app_session import AppSession

    from app_pages.ui.batching import batch_script_messages
    assert batch_script_messages(0.2) and batch_script_messages(0.2)     # idempotent
    assert AppSession.flush_browser_queue.__module__ == "app_pages.ui.batching"
