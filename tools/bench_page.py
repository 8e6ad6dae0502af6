"""Page benchmark (not a test): from committing a new text to every chart rendered, in headless
Chromium, median of N.

    python -m tools.bench_page                  # 1,000 chars × 256 units and 5,000 chars, 5 runs
    python -m tools.bench_page --repeats 3 --no-reference
    python -m tools.bench_page --views hidden-states predictions gradients --baseline /tmp/base
                                                # per view: this app vs another checkout's,
                                                # text commits, view switches and
                                                # reruns with nothing changed (bench_page_views)
    python -m tools.bench_page --views all --ckpt timemachine-lstm-2layer --scrub --repeats 3
                                                # every view on a shipped checkpoint, and one step
                                                # of the training-step scrubber (bench_page_scrub)

What is timed: the sidebar text area gets a new text (a different one each run, so no cache is
hit), Ctrl+Enter commits it, and the clock stops when the Streamlit run is over and every Plotly
chart on the page shows the new text (each chart's ``layout.meta.rnnviz`` carries a digest of the
text, see ``app_pages/ui/charts.show_chart``) and has been painted. The model is a randomly
initialised 1-layer LSTM with 256 units (the shipped size) saved to a temporary checkpoint folder.

Reference: the naive page, one full-resolution Plotly heatmap of every unit × every character
(no window, no overview), driven the same way on the same server machine in the same run.

``page_rows()`` returns rows ``{"name", "ours_s", "reference_s", "ratio", "target"}`` for
``tools/bench.py`` (``bench_page(quick)`` is its entry point): per size one row with the absolute
target in seconds (reference None, the naive time as ``naive_s``) and one row against the naive
page (target: ratio ≤ 1); plus the floor. It needs Debian's Chromium and Playwright.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.page_js import PAINT_JS, UPDATE_JS, update_arg
from tools.serve import CHROMIUM, CHROMIUM_ARGS, REPO, AppServer
MODEL_KEY = "timemachine-lstm"
TARGETS = {1_000: 1.0, 5_000: 3.0}
_WORDS = ("the time traveller as we shall call him for now was explaining "
          "a curious idea to us his dark eyes were bright and his face was eager as the lamp burned low and the small machine of brass and crystal glittered on the table between our glasses").split()

NAIVE_APP = '''
import hashlib, os, sys
sys.path.insert(0, {repo!r})
import numpy as np, plotly.graph_objects as go, streamlit as st
import rnnviz
from rnnviz.plots.common import step_labels

@st.cache_resource
def model():
    return rnnviz.load_model({key!r})

text = st.text_area("Text", key="text")
if text:
    tr = rnnviz.trace(model(), text)
    z = tr["layer0.h"].numpy().T
    fig = go.Figure(go.Heatmap(z=z, x=step_labels(tr.chars), colorscale="RdBu_r", zmid=0,
                               hovertemplate="%{{x}} %{{y}} %{{z:.4f}}<extra></extra>"))
    digest = hashlib.sha256(f"{key}\\0{{text}}".encode()).hexdigest()[:16]
    fig.update_layout(meta={{"rnnviz": digest}}, height=700)
    st.plotly_chart(fig, theme=None)
'''



def digest(text: str, model_key: str = MODEL_KEY) -> str:
    """The digest the page puts in every chart's ``layout.meta.rnnviz`` (see app_pages/ui/sidebar.py)."""
    return hashlib.sha256(f"{model_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def sample_text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    text = " ".join(out)
    return (text + " " * n)[:n]


def make_checkpoints(folder: Path, hidden: int = 256) -> None:
    import torch

    from rnnviz.checkpoint import save_checkpoint
    from rnnviz.model import ModelConfig, build_model
    from rnnviz.vocab import Vocab

    tokens = Vocab.from_text("abcdefghijklmnopqrstuvwxyz .,;:'!?\n").tokens
    model = build_model(ModelConfig("lstm", hidden, 1, tuple(tokens)), seed=0)
    with torch.no_grad():  # larger weights than the default init: states use the colour range
        for p in model.parameters():
            p.mul_(4.0)
    save_checkpoint(model, folder / f"{MODEL_KEY}.safetensors", {"corpus": "bench (random init)"})


def time_commits(browser, url: str, n_chars: int, repeats: int, min_charts: int, seed0: int) -> list[float]:
    """Open ``url``, then ``repeats`` times: type a new text, commit, wait for every chart."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("textarea", timeout=120_000)
        times = []
        for i in range(repeats + 1):  # the first run warms the browser (Plotly's JS chunk) up
            text = sample_text(n_chars, seed0 + i)
            area = page.locator("textarea").first
            area.fill(text)
            start = time.perf_counter()
            area.press("Control+Enter")
            page.wait_for_function(UPDATE_JS, arg=update_arg(digest(text), min_charts), timeout=120_000,
                                   polling="raf")
            page.evaluate(PAINT_JS)
            elapsed = time.perf_counter() - start
            if i:
                times.append(elapsed)
        return times
    finally:
        context.close()


def page_rows(sizes=(1_000, 5_000), repeats: int = 5, reference: bool = True,
              hidden: int = 256, verbose: bool = False) -> list[dict]:
    """Benchmark rows (see the module docstring). Needs /usr/bin/chromium and Playwright."""
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnviz-benchpage-") as tmp:
        folder = Path(tmp)
        make_checkpoints(folder, hidden)
        env = {"RNNVIZ_CHECKPOINT_DIR": str(folder)}
        naive_script = folder / "naive_app.py"
        naive_script.write_text(NAIVE_APP.format(repo=str(REPO), key=MODEL_KEY))
        ours = AppServer(REPO / "app.py", env)
        naive = AppServer(naive_script, env) if reference else None
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    for n in sizes:
                        mine = time_commits(browser, ours.url + "/", n, repeats, 1, seed0=1000 * n)
                        ref = (time_commits(browser, naive.url + "/", n, repeats, 1, seed0=7 + 1000 * n)
                               if naive else None)
                        if verbose:
                            print(f"{n} chars: ours {[round(t, 2) for t in mine]}"
                                  + (f", naive {[round(t, 2) for t in ref]}" if ref else ""), file=sys.stderr)
                        o = statistics.median(mine)
                        r = statistics.median(ref) if ref else None
                        label = f"page: hidden states, commit text → all charts, {n:,} chars × {hidden} units"
                        rows.append({"name": label, "ours_s": o, "reference_s": None, "ratio": None,
                                     "target": TARGETS.get(n, 3.0), "naive_s": r})
                        if r:
                            rows.append({"name": f"{label}, vs the naive page (one full heatmap)",
                                         "ours_s": o, "reference_s": r, "ratio": o / r, "target": 1.0})
                    if naive:  # context: the same round trip with a 10-character text
                        floor = time_commits(browser, naive.url + "/", 10, repeats, 1, seed0=99)
                        if verbose:
                            print(f"floor (naive page, 10 chars): {[round(t, 2) for t in floor]}", file=sys.stderr)
                        rows.append({"name": "page: floor, naive page with a 10-char text (Streamlit round "
                                             "trip + one tiny chart on this machine now)",
                                     "ours_s": statistics.median(floor), "reference_s": None,
                                     "ratio": None, "target": None})
                finally:
                    browser.close()
        finally:
            ours.stop()
            if naive:
                naive.stop()
    return rows


def bench_page(quick: bool = False) -> list[dict]:
    """Entry point for ``python -m tools.bench --page`` (quick: 1,000 chars only, 3 runs)."""
    return page_rows(sizes=(1_000,) if quick else (1_000, 5_000), repeats=3 if quick else 5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 5_000])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--no-reference", action="store_true", help="skip the naive page")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--views", nargs="+", metavar="VIEW",
                    help="per-view mode (tools/bench_page_views.py): hidden-states, predictions, gradients, "
                         "step-through, compare, units, lesson, generate, or all")
    ap.add_argument("--modes", nargs="+", default=["inplace"],
                    choices=["inplace", "baseline", "bare"],
                    help="baseline: the app of the checkout --baseline names; bare: a bare Streamlit page (a text area and one chart), the floor under rnnviz")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="per-view mode: a checkout of rnnviz (git worktree add DIR <commit>) whose app "
                         "runs beside this one as mode 'baseline', A/B in the same run")
    ap.add_argument("--chars", type=int, default=1_000, help="text length in the per-view mode")
    ap.add_argument("--pin", action="store_true",
                    help="per-view mode: app servers on core 0, browsers on core 1 (a one-core "
                         "replica, the student's browser on its own machine)")
    ap.add_argument("--ckpt", metavar="NAME",
                    help="per-view mode: a shipped checkpoint (e.g. timemachine-lstm-2layer), opened through "
                         "the link's ckpt= key, instead of the random LSTM")
    ap.add_argument("--scrub", nargs="*", metavar="VIEW",
                    help="per-view mode: also time one step of the training-step scrubber on these views "
                         "(default: hidden-states gradients; needs --ckpt with a timeline)")
    args = ap.parse_args(argv)
    if args.views == ["all"]:
        from tools.bench_page_views import VIEWS
        args.views = list(VIEWS)
    if args.views:
        return views_main(args)
    rows = page_rows(tuple(args.sizes), args.repeats, not args.no_reference, args.hidden, verbose=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
        for r in rows:
            if r["target"] is None:
                print(f"{r['name']}: {r['ours_s']:.2f} s")
                continue
            if r["reference_s"] is not None:
                ok = "OK" if r["ratio"] <= r["target"] else "OVER"
                print(f"{r['name']}: {r['ours_s']:.2f} s vs {r['reference_s']:.2f} s = ×{r['ratio']:.2f} "
                      f"(target ≤ ×{r['target']:g}, {ok})")
            else:
                ok = "OK" if r["ours_s"] <= r["target"] else "OVER"
                print(f"{r['name']}: {r['ours_s']:.2f} s (target ≤ {r['target']:.1f} s, {ok})")
    return 0


def views_main(args) -> int:
    """``--views``: per view and mode, text commits, view switches and reruns (tools/bench_page_views.py)."""
    from tools import bench_page_views as bv
    from tools.bench import format_rows

    unknown = [v for v in args.views if v not in bv.VIEWS]
    if unknown:
        print(f"unknown view(s) {unknown}; choose from {list(bv.VIEWS)}", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        print("--pin needs two cores", file=sys.stderr)
        return 2
    modes = list(args.modes)
    if args.baseline is not None and "baseline" not in modes:
        modes.append("baseline")
    if "baseline" in modes and (args.baseline is None or not (args.baseline / "app.py").is_file()):
        print("mode 'baseline' needs --baseline DIR, a checkout with an app.py", file=sys.stderr)
        return 2
    scrub = [] if args.scrub is None else (args.scrub or ["hidden-states", "gradients"])
    if scrub and not args.ckpt:
        print("--scrub needs --ckpt, a checkpoint with a training timeline", file=sys.stderr)
        return 2
    results, idle = bv.run_views(args.views, modes, args.repeats, args.chars, args.hidden,
                                 verbose=True, pin=args.pin, baseline=args.baseline,
                                 ckpt=args.ckpt, scrub=scrub)
    rows = bv.view_rows(results, args.chars, args.hidden)
    if args.json:
        print(json.dumps({"rows": rows, "idle_cpu_per_s": idle,
                          "samples": {" ".join(k): v for k, v in results.items()}}, indent=2))
        return 0
    load1 = os.getloadavg()
    print(f"load average (1, 5, 15 min): at the start {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, "
          f"at the end {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f} on {os.cpu_count()} cores")
    print(bv.table(results, idle))
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
