"""One step of the "training step" scrubber, timed in headless Chromium (tools/bench_page_views.py's
sessions; ``python -m tools.bench_page --views hidden-states gradients --ckpt timemachine-lstm-2layer
--scrub``).

The thumb of the view's "Training step" slider (app_pages/ui/timeline.py) gets one arrow key, as a
user scrubbing with the keyboard: ArrowLeft from the checkpoint back through the snapshots (each
press a snapshot this server has not traced yet), ArrowRight once the first snapshot is reached.
The clock stops when the page's "Training step N of M" line names a new step, the script run is
over and every chart carries the digest of that snapshot (``<name>@<step>`` and the text, see
``training_step``) and has been painted — the same wait as a text commit (tools.page_js.UPDATE_JS).
The first press per view is a warm-up and not counted.
"""

from __future__ import annotations

import sys

from tools.bench_page import digest
from tools.page_js import RUN_STARTED_JS, STATE_JS

#: The sliders (the scrubber's label: "Training step").
SLIDER = "[data-testid='stSlider']"
#: The step line under the view's title, "Training step 1,234 of 5,000 (snapshot 3 of 20) · …", as
#: [step, last step, snapshot number from 1, snapshots]; null where the page shows none.
STEP_LINE_JS = """() => { const m = document.body.innerText.match(
    /Training step ([\\d,]+) of ([\\d,]+) \\(snapshot (\\d+) of (\\d+)\\)/);
  return m ? m.slice(1).map(v => parseInt(v.replace(/,/g, ''), 10)) : null; }"""
TIMEOUT_MS = 180_000


def shown_step(page) -> tuple[int, int, int, int]:
    """(the step shown, the last step, its snapshot's number from 1, the number of snapshots) from
    the page's step line."""
    return tuple(page.wait_for_function(STEP_LINE_JS, timeout=TIMEOUT_MS).json_value())


def snapshot_digest(text: str, model_key: str, step: int, last: int) -> str:
    """The digest of the charts at ``step`` (the checkpoint's own at the last step)."""
    return digest(text, model_key if step == last else f"{model_key}@{step}")


def scrub(s, key: str) -> tuple[float, float, float]:
    """Press ``key`` on session ``s``'s training-step slider; timed as Session.timed."""
    page = s.page
    before, last, _, _ = shown_step(page)
    thumb = page.locator(SLIDER).filter(has_text="Training step").get_by_role("slider")

    def press():
        thumb.press(key)
        try:
            page.wait_for_function(RUN_STARTED_JS, timeout=TIMEOUT_MS, polling=50)
            page.wait_for_function(f"() => {{ const m = ({STEP_LINE_JS})(); return m !== null && m[0] !== {before}; }}",
                                   timeout=TIMEOUT_MS, polling=50)
        except Exception as err:
            raise RuntimeError(f"{s.mode} {s.view}: {key} moved no step from {before}: {page.evaluate(STATE_JS)}") from err

    def dg():
        step = shown_step(page)[0]
        return snapshot_digest(s.last_text, s.model_key, step, last)
    return s.timed(press, dg, s.view, None)


def scrub_rounds(sessions, view: str, repeats: int, results: dict, verbose: bool = False) -> None:
    """On ``view`` (switched to if elsewhere), ``repeats`` + 1 scrub steps per session, in lockstep;
    results under ``(view, mode, "scrub")``."""
    for s in sessions:
        if s.mode == "bare":
            continue
        if s.view != view:
            s.switch(view, s.last_text)
        shown_step(s.page)                  # the view has a timeline (else this times out, saying so)
    key = {s.mode: "ArrowLeft" for s in sessions}
    for rnd in range(repeats + 1):
        for s in (sessions if rnd % 2 == 0 else sessions[::-1]):
            if s.mode == "bare":
                continue
            try:
                got = scrub(s, key[s.mode])
            except RuntimeError as err:     # said, not counted (as bench_page_views.step)
                print(f"FAILED scrub {view} {s.mode}: {err}", file=sys.stderr)
                continue
            _, _, k, n = shown_step(s.page)
            if k in (1, n):                 # at an end of the slider: back the other way
                key[s.mode] = "ArrowRight" if k == 1 else "ArrowLeft"
            if rnd:
                results.setdefault((view, s.mode, "scrub"), []).append(got)
        if verbose and rnd:
            print(f"scrub {view} round {rnd}: " + ", ".join(
                f"{m} {v[-1][0]:.2f} s" for (vw, m, k), v in results.items() if vw == view and k == "scrub"),
                file=sys.stderr)
