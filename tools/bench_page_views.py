"""Per-view page benchmark: the app's charts (updated in place, "inplace") against a "baseline": the
app of another checkout (``--baseline DIR``, e.g. ``git worktree add /tmp/base <commit>``), one
session per mode, in the same run — what a change costs or saves per view, A/B on the same load.

    python -m tools.bench_page --views hidden-states predictions gradients --baseline /tmp/base --repeats 5

App servers on the same temporary random 256-unit LSTM checkpoint (tools.bench_page), one per
mode, each driven by its own headless Chromium (tools.serve.CHROMIUM), step by step in lockstep
(the order of the two alternates), so both see the same load. Per view, every repeat:

* ``switch``: click the view's link in the sidebar nav (from the previous view);
* ``text``: a new text of ``--chars`` characters, committed with Ctrl+Enter in the sidebar text
  area;
* ``rerun``: right after, the same page run again with nothing changed (Streamlit's "R" shortcut):
  what any script run costs this page when no chart, text or widget has anything new to show (the
  floor under ``text``; with in-place charts the charts receive identical data).

The clock stops when a script run has started and ended since the action, the view's path is
shown, none of the old view's charts is left, and every chart element on the page holds a drawn
chart that carries the text's digest, painted (tools.page_js.UPDATE_JS: a wait that looks only
at the status widget and at the charts present, passes right after a view switch's click, before
any new chart exists). Each update also records the CPU seconds (user + system, /proc) of that
browser's processes and of its app server, from just before the action until the page is idle after
the paint (``requestIdleCallback``). The first round (each view's first visit) is a warm-up and is
not counted; it also learns how many charts each view shows, which later waits require.

``--ckpt NAME`` opens a shipped checkpoint instead (the link's ``ckpt=`` key, the shipped folder, the
server's start-up warm-up off) and ``--scrub`` then also times one step of the training-step
scrubber on the views with one (tools/bench_page_scrub.py). A view that never shows its charts
(say, a computation stopped on a busy machine) is named on stderr and left out of the medians.

``--pin`` puts every app server on one core and the browsers (and this driver) on another, as a
one-core replica serving a student whose browser runs on a laptop of its own; without it, server
and browser share both cores of this box and each slows the other (every figure goes up).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.bench_page import MODEL_KEY, digest, sample_text
from tools.page_js import ARM_JS, IDLE_JS, PAINT_JS, RUN_STARTED_JS, STATE_JS, UPDATE_JS, update_arg
from tools.procstats import chromium_pids, cpu_seconds, descendants, parent, pin_tree
from tools.serve import CHROMIUM, CHROMIUM_ARGS, REPO, AppServer

#: view name -> its URL path (app.py's url_path; the default page is the root).
VIEWS = {"hidden-states": "", "predictions": "predictions", "gradients": "gradients", "step-through": "step",
         "compare": "compare", "units": "units", "lesson": "lesson", "generate": "generate"}
#: mode -> the app server's environment. "bare": not rnnviz but the floor under it, a bare Streamlit
#: page (BARE_APP: the sidebar text area and one small in-place chart), driven the same way (text only).
#: "baseline": the app.py of the checkout given as ``baseline`` (run_views).
MODES = {"inplace": {}, "baseline": {}, "bare": {}}
#: The modes each in-place row is compared with, where the run has them (mode -> name in the rows).
REFERENCES = {"baseline": "baseline"}
#: In the order they are done each round: back to front (switch to the view, commit, rerun).
KINDS = ("rerun", "text", "switch")
#: The issue's targets for a text update at 1,000 chars × 256 units (issue 14).
TEXT_CPU_TARGET_S, TEXT_TIME_TARGET_S = 0.35, 1.0
TIMEOUT_MS = 180_000
#: How often the page is asked whether it is ready. Not "raf": polling on every animation frame makes
#: the page draw frames all along (0.1-0.25 CPU-s per second here), which would count as the update's.
POLL_MS = 50
IDLE_S = 3.0
#: The cores this process may use, as it started (``--pin`` takes the first two).
CORES = sorted(os.sched_getaffinity(0))

BARE_APP = '''
import hashlib, sys
sys.path.insert(0, {repo!r})
import plotly.graph_objects as go
import streamlit as st
from pathlib import Path
from app_pages.ui.plotly_component import install_plotly_js, plotly_chart_inplace

st.set_page_config(layout="wide")
install_plotly_js(Path(__file__).parent)
text = st.sidebar.text_area("Text", key="text")
digest = hashlib.sha256(f"{key}\\0{{text}}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
st.caption(f"{{len(text)}} characters")
fig = go.Figure(go.Scatter(x=[0, 1], y=[0, len(text)]), layout=dict(meta={{"rnnviz": digest}}))
plotly_chart_inplace(fig, key="chart")
'''

# Flag the charts on the page and click the nav link to ``path`` (one round trip, then the clock).
SWITCH_JS = """path => {
  document.querySelectorAll('.js-plotly-plot').forEach(e => e.classList.add('rnnviz-old'));
  const norm = p => p.replace(/\\/$/, '');
  const a = [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
      .find(a => norm(new URL(a.href).pathname) === norm(path));
  if (!a) return false;
  a.click();
  return true;
}"""
COUNT_JS = "() => document.querySelectorAll('.js-plotly-plot').length"


@dataclass
class Session:
    """One mode: its app server, its own Chromium (so its CPU can be read apart) and one page."""

    mode: str
    server: AppServer
    browser: object = None
    roots: list[int] = field(default_factory=list)
    page: object = None
    view: str | None = None
    last_text: str = ""
    min_charts: dict = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    #: the checkpoint the page shows (``ckpt=`` in the link; the charts' digest is of it and the text)
    model_key: str = MODEL_KEY
    ckpt_param: str = ""

    def launch(self, pw) -> None:
        before = chromium_pids()
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        new = chromium_pids() - before
        self.roots = sorted(p for p in new if parent(p) not in new)
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))

    def cpu(self) -> float:
        """CPU seconds of this browser's processes so far (live ones and the children they reaped)."""
        pids = set(self.roots)
        for r in self.roots:
            pids.update(descendants(r))
        return sum(cpu_seconds(p) for p in pids)

    def open(self, view: str) -> None:
        self.page.goto(f"{self.server.url}/{'' if self.mode == 'bare' else VIEWS[view]}{self.ckpt_param}")
        self.page.wait_for_selector("textarea", timeout=TIMEOUT_MS)

        self.view = view

    def timed(self, act, dg, view: str, path: str | None) -> tuple[float, float, float]:
        """Run ``act``; seconds until the view is ready and painted, and the CPU seconds of the
        browser and of the app server until the page is idle after that (``dg``: the charts'
        digest, or a function that tells it once ``act`` is done)."""
        page = self.page
        page.evaluate(ARM_JS)
        c0, s0 = self.cpu(), cpu_seconds(self.server.proc.pid)
        t0 = time.perf_counter()
        act()
        dg = dg() if callable(dg) else dg
        try:
            page.wait_for_function(UPDATE_JS, arg=update_arg(dg, self.min_charts.get(view, 1), path, armed=True),
                                   timeout=TIMEOUT_MS, polling=POLL_MS)
        except Exception as err:
            raise RuntimeError(f"{self.mode} {view}: not ready: {page.evaluate(STATE_JS)}") from err
        page.evaluate(PAINT_JS)
        elapsed = time.perf_counter() - t0
        page.evaluate(IDLE_JS)
        # CPU clocks tick in 1/CLK_TCK s: rounded to that, 0.35 is 0.35 (not 0.35000000000000003,
        # which the ≤ 0.35 target would call a miss)
        return (elapsed, round(self.cpu() - c0, 2), round(cpu_seconds(self.server.proc.pid) - s0, 2))

    def commit(self, text: str) -> tuple[float, float, float]:
        area = self.page.locator("textarea").first
        area.fill(text)
        return self.timed(lambda: area.press("Control+Enter"), digest(text, self.model_key), self.view, None)

    def switch(self, view: str, text: str) -> tuple[float, float, float]:
        path = "/" + VIEWS[view]

        def click():
            if not self.page.evaluate(SWITCH_JS, path):
                raise RuntimeError(f"no link to {path!r} in the sidebar nav")
        out = self.timed(click, digest(text, self.model_key), view, path)
        self.view = view
        return out

    def rerun(self, text: str) -> tuple[float, float, float]:
        """Run the page again with nothing changed ("R" with the focus on the page, not a widget);
        the clock waits for the run to have started, since every chart already carries the digest."""
        page = self.page

        def press():
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
            page.keyboard.press("r")
            try:
                page.wait_for_function(RUN_STARTED_JS, timeout=30_000, polling=POLL_MS)
            except Exception as err:
                raise RuntimeError(f"{self.mode} {self.view}: 'R' started no run: {page.evaluate(STATE_JS)}") from err
        return self.timed(press, digest(text, self.model_key), self.view, None)

    def learn(self, text: str) -> None:
        """After a view's first visit: let late charts arrive, then remember how many it shows."""
        time.sleep(1.5)     # (a view may show no chart at all: then min_charts 0, the run's end is waited on)
        self.page.wait_for_function(UPDATE_JS, arg=update_arg(digest(text, self.model_key), 0), timeout=TIMEOUT_MS)
        self.min_charts[self.view] = self.page.evaluate(COUNT_JS)

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
        self.server.stop()


def app_script(mode: str, folder: Path, baseline: Path | None = None) -> Path:
    """The app a mode's server runs: rnnviz's, the ``baseline`` checkout's (mode "baseline"), or
    (``bare``) BARE_APP written into ``folder``."""
    if mode == "baseline":
        if baseline is None:
            raise ValueError("mode 'baseline' needs a checkout to run (--baseline DIR)")
        return Path(baseline) / "app.py"
    if mode != "bare":
        return REPO / "app.py"
    script = folder / "bare_app.py"
    script.write_text(BARE_APP.format(repo=str(REPO), key=MODEL_KEY), encoding="utf-8")
    return script


def pin_cores(sessions: list[Session]) -> None:
    """``--pin``: every app server on core 0, the browsers and this driver on core 1 — a one-core
    replica with the student's browser on a machine of its own. Done again after every action, so
    renderer processes a browser started meanwhile are on core 1 too."""
    server_core, browser_core = CORES[:2]
    pin_tree(os.getpid(), {browser_core})      # the driver, Playwright's node, and (for now) the servers
    for s in sessions:
        for root in s.roots:
            pin_tree(root, {browser_core})
    for s in sessions:
        pin_tree(s.server.proc.pid, {server_core})


def step(sessions: list[Session], view: str, text: str, rnd: int, results: dict,
         pin: bool = False) -> None:
    """Every session (order alternating by round): switch to ``view`` if elsewhere, commit ``text``
    (``pin``: re-pin the cores after every action, see :func:`pin_cores`)."""
    order = sessions if rnd % 2 == 0 else sessions[::-1]
    for kind in KINDS[::-1]:
        for s in order:
            if (kind == "switch" and (s.view == view or s.mode == "bare")) or (kind == "rerun" and rnd == 0):
                continue                                    # the bare page has no views
            try:
                got = _act(s, kind, view, text)
            except RuntimeError as err:                     # a view that never showed: said, not counted
                print(f"FAILED round {rnd} {view} {kind} {s.mode}: {err}", file=sys.stderr)
                s.view = view
                continue
            if rnd == 0:
                s.learn(s.last_text)
            else:
                results.setdefault((view, s.mode, kind), []).append(got)
            if pin:
                pin_cores(sessions)


def _act(s: Session, kind: str, view: str, text: str) -> tuple[float, float, float]:
    if kind == "switch":
        return s.switch(view, s.last_text)
    if kind == "rerun":
        return s.rerun(s.last_text)
    s.last_text = text
    return s.commit(text)


def idle_cpu(sessions: list[Session], seconds: float = IDLE_S) -> dict:
    """{mode: the browser's CPU seconds per second with the page shown and nothing done}."""
    time.sleep(2.0)  # let the last update's after-work (GC, late frames) pass
    before = {s.mode: s.cpu() for s in sessions}
    time.sleep(seconds)
    return {s.mode: (s.cpu() - before[s.mode]) / seconds for s in sessions}


def report(results: dict, view: str) -> str:
    return f"{view}: " + ", ".join(f"{m} {k} {v[-1][0]:.2f} s {v[-1][1]:.2f} CPU-s"
                                   for (vw, m, k), v in results.items() if vw == view)


def run_views(views, modes, repeats: int = 5, n_chars: int = 1_000, hidden: int = 256,
              verbose: bool = False, pin: bool = False, baseline: Path | None = None,
              ckpt: str | None = None, scrub=()) -> tuple[dict, dict]:
    """({(view, mode, kind): [(seconds, browser CPU-s, server CPU-s), ...]}, {mode: idle browser
    CPU-s per second}) (see the module docstring; ``pin``: :func:`pin_cores`; ``baseline``: the
    checkout mode "baseline" runs; ``ckpt``: a shipped checkpoint instead of the random one, opened
    through the link's ``ckpt=`` key; ``scrub``: views whose training-step scrubber is timed after
    the rounds, tools.bench_page_scrub)."""
    from playwright.sync_api import sync_playwright

    from tools.bench_page import make_checkpoints
    from tools.bench_page_scrub import scrub_rounds

    results: dict = {}
    sessions: list[Session] = []
    with tempfile.TemporaryDirectory(prefix="rnnviz-benchviews-") as tmp:
        folder = str(REPO / "checkpoints") if ckpt else tmp
        if not ckpt:
            make_checkpoints(Path(tmp), hidden)
        try:
            with sync_playwright() as pw:
                for mode in modes:
                    env = {"RNNVIZ_CHECKPOINT_DIR": folder, **MODES[mode]}
                    # a shipped folder: no start-up warm-up (scorecards and unit indexes of every shipped
                    # checkpoint, tens of CPU-s) beside the rounds; a class's server has it done before
                    args = ("--no-warmup",) if ckpt and mode != "bare" else ()
                    sessions.append(Session(mode, AppServer(app_script(mode, Path(tmp), baseline), env, args=args),
                                            model_key=ckpt if ckpt and mode != "bare" else MODEL_KEY, ckpt_param=f"?ckpt={ckpt}" if ckpt else ""))
                    sessions[-1].launch(pw)
                    sessions[-1].open(views[0])
                if pin:
                    pin_cores(sessions)
                seed = random.Random(14).randrange(10**6)
                idle = {}
                for rnd in range(repeats + 1):
                    for i, view in enumerate(views):
                        step(sessions, view, sample_text(n_chars, seed + 100 * rnd + i), rnd, results,
                             pin)
                        if verbose and rnd:
                            print(f"round {rnd} {report(results, view)}", file=sys.stderr)
                    if rnd == 0:  # warmed up: what an idle page costs, for scale
                        idle = idle_cpu(sessions)
                for view in scrub:
                    scrub_rounds(sessions, view, repeats, results, verbose)
                for s in sessions:
                    s.close()
                    s.browser = None
        finally:
            for s in sessions:
                if s.server.alive():
                    s.server.stop()
    return results, idle


def medians(results: dict) -> dict:
    """{(view, mode, kind): (median seconds, median browser CPU-s, median server CPU-s, n)}."""
    return {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) + (len(v),)
            for k, v in results.items()}


def table(results: dict, idle: dict | None = None) -> str:
    """Medians per view, kind and mode (beside the in-place rows: their ratios to each reference
    mode the run has, time and browser CPU)."""
    med = medians(results)
    lines = [f"{'view':<14} {'kind':<7} {'mode':<9} {'n':>2} {'time s':>7} {'browser CPU-s':>14} "
             f"{'server CPU-s':>13}  in-place / reference (time, browser CPU)"]
    for (view, mode, kind), (t, c, sc, n) in sorted(med.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        vs = ""
        for name in REFERENCES if mode == "inplace" else ():
            ref = med.get((view, name, kind))
            if ref and ref[0] and ref[1]:
                vs += f"  /{name} ×{t / ref[0]:.2f}, ×{c / ref[1]:.2f}"
        lines.append(f"{view:<14} {kind:<7} {mode:<9} {n:>2} {t:>7.2f} {c:>14.2f} {sc:>13.2f}{vs}")
    if idle:
        lines.append("idle page, browser CPU-s per second (included in the figures above): "
                     + ", ".join(f"{m} {v:.3f}" for m, v in idle.items()))
    return "\n".join(lines)


def view_rows(results: dict, n_chars: int = 1_000, hidden: int = 256) -> list[dict]:
    """Rows for tools/bench.py: per view and kind, in-place against each reference mode of the run
    (the baseline checkout) — ratio, target ≤ 1 — for the time and the browser's CPU;
    per view, the in-place text update against the issue's absolute targets."""
    med = medians(results)
    rows = []
    size = f"{n_chars:,} chars × {hidden}"
    for (view, mode, kind), (t, c, _, _) in sorted(med.items()):
        if mode != "inplace":
            continue
        for metric, ours, i in (("seconds", t, 0), ("browser CPU-s", c, 1)):
            label = f"page {view} {kind}: {metric}, in-place"
            for name in REFERENCES:
                ref = med.get((view, name, kind))
                if ref is not None:
                    rows.append({"name": f"{label} / {REFERENCES[name]} ({size})", "ours_s": ours,
                                 "reference_s": ref[i], "ratio": ours / ref[i] if ref[i] else None,
                                 "target": 1.0})
            if kind == "text":
                rows.append({"name": f"{label}, issue 14 target ({size})", "ours_s": ours, "reference_s": None,
                             "ratio": None, "target": TEXT_TIME_TARGET_S if i == 0 else TEXT_CPU_TARGET_S})
    return rows


def bench_page_views(quick: bool = False) -> list[dict]:
    """Entry point for ``python -m tools.bench --page`` (group "page-views"; quick: 2 rounds): the
    app alone, against the issue's absolute targets (a baseline needs ``--baseline``)."""
    results, _ = run_views(list(VIEWS), ["inplace"], repeats=2 if quick else 5)
    return view_rows(results)
