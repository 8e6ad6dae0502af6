#!/usr/bin/env python
"""What a hostile upload costs everyone else (issue 15): one server, two browser sessions.

    python -m tools.heavy_neighbour                     # rnn_tanh 1 × 4,096, 60 s per phase
    python -m tools.heavy_neighbour --cell lstm --layers 8 --phase 45 --json out.json

A *neighbour* session commits a new text on Hidden states every 2–3 s (a student at a brisk pace)
and times each update until every chart shows it (tools/load_session's wait). Phase 1: the
neighbour alone. Phase 2: the same, while a *hostile* session uploads the largest checkpoint the
parser accepts (float16, h = 4,096 for an RNN) and visits every view in turn, over and over.
Reports the neighbour's p50/p95/max per phase, the hostile session's seconds per view and the
"Reduced because / Not computed / stopped" notes it was shown, and the server's CPU seconds.
The browsers run at the same priority as the server (a worst case for the neighbour: on a real
deployment they are on other machines). Not a test: run it by hand on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tools.heavy import largest_checkpoint  # noqa: E402
from tools.load_report import pct  # noqa: E402
from tools.load_session import WORDS, arm, digest, wait_update  # noqa: E402
from tools.procstats import cpu_seconds  # noqa: E402
from tools.page_js import RUN_OVER_JS  # noqa: E402
from tools.serve import CHROMIUM, CHROMIUM_ARGS, AppServer  # noqa: E402

NOTES = ("Reduced because", "Not computed", "stopped after", "the server is busy")


class Phases:
    """The neighbour warms up (WARM_UPDATES untimed updates), then phase 1 (alone) and phase 2
    (beside the hostile session) follow; ``until`` is the end of phase 2."""

    WARM_UPDATES = 3

    def __init__(self, phase: float):
        self.phase = phase
        self.warm = asyncio.Event()
        self.until = float("inf")


async def neighbour(browser, url: str, max_chars: int, phases: Phases, rng: random.Random,
                    out: list[tuple[float, float]]) -> None:
    """Commit texts until the end of phase 2; append (start, latency s) per timed update."""
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    try:
        await page.goto(f"{url}/?ckpt=timemachine-lstm&text=hello", timeout=120_000)
        await wait_update(page, digest("timemachine-lstm", "hello", max_chars), "hello", 120)
        area = page.locator("[data-testid='stSidebar'] [data-testid='stTextArea'] textarea")
        n = 0
        while time.monotonic() < phases.until:
            n += 1
            text = f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))} {n}"
            await area.fill(text)
            await arm(page)
            t0 = time.monotonic()
            await area.press("Control+Enter")
            await wait_update(page, digest("timemachine-lstm", text, max_chars), text, 120, armed=True)
            if n > Phases.WARM_UPDATES:
                out.append((t0, time.monotonic() - t0))
            elif n == Phases.WARM_UPDATES:
                phases.warm.set()
            await asyncio.sleep(rng.uniform(2.0, 3.0))
    finally:
        await ctx.close()


async def hostile(browser, url: str, upload: Path, until: float, max_chars: int, report: dict) -> None:
    """With the longest text the page takes, upload ``upload``, then visit every view in turn
    until ``until``; per view: seconds to the end of its run, and the cost-model notes it showed."""
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    try:
        # the longest text the page traces, pasted into the link: the heaviest legal request
        text = " ".join(random.Random(1).choice(WORDS) for _ in range(1500))[:max_chars]
        await page.goto(f"{url}/?{urlencode({'text': text})}", timeout=120_000)
        await page.wait_for_selector("[data-testid='stFileUploader'] input[type='file']", timeout=120_000,
                                     state="attached")
        t0 = time.monotonic()
        await page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
        await page.locator("[data-testid='stAlertContentSuccess']").wait_for(timeout=300_000)
        await page.wait_for_function(RUN_OVER_JS, timeout=300_000, polling=200)
        report["upload_s"] = round(time.monotonic() - t0, 2)
        links = page.locator("[data-testid='stSidebarNav'] a")
        names = await links.all_inner_texts()
        k = 0
        while time.monotonic() < until:
            name = names[k % len(names)]
            k += 1
            t0 = time.monotonic()
            await links.nth((k - 1) % len(names)).click()
            await page.wait_for_timeout(300)
            await page.wait_for_function(RUN_OVER_JS, timeout=300_000, polling=200)
            body = await page.evaluate("() => document.body.innerText")
            seen = sorted({m for m in NOTES if m in body})
            errors = await page.locator("[data-testid='stException']").count()
            report.setdefault("views", []).append({"view": name, "s": round(time.monotonic() - t0, 2),
                                                   "notes": seen, "exceptions": errors})
    finally:
        await ctx.close()


async def run(url: str, upload: Path, phase: float, max_chars: int) -> dict:
    from playwright.async_api import async_playwright

    updates: list[tuple[float, float]] = []
    report: dict = {}
    phases = Phases(phase)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            task = asyncio.create_task(neighbour(browser, url, max_chars, phases, random.Random(0), updates))
            await phases.warm.wait()
            start = time.monotonic()
            phases.until = start + 2 * phase
            await asyncio.sleep(phase)
            await hostile(browser, url, upload, phases.until, max_chars, report)
            await task
        finally:
            await browser.close()
    split = start + phase
    return {"alone": [d for t, d in updates if start <= t < split],
            "beside": [d for t, d in updates if t >= split], "hostile": report}


def summary(lat: list[float]) -> dict:
    return {"updates": len(lat), "p50_s": pct(lat, 50), "p95_s": pct(lat, 95),
            "max_s": round(max(lat), 3) if lat else None,
            "mean_s": round(statistics.fmean(lat), 3) if lat else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="rnn_tanh", help="the hostile upload's cell (default rnn_tanh)")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--phase", type=float, default=60.0, help="seconds per phase (default 60)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from app_pages.ui.text import MAX_PAGE_CHARS
    tmp = Path(tempfile.mkdtemp(prefix="rnnviz-heavy-"))
    cfg = largest_checkpoint(args.cell, args.layers, tmp / "hostile.safetensors")
    server = AppServer(REPO / "app.py", {},
                       log=open(tmp / "server.log", "wb"), timeout=180)
    try:
        cpu0 = cpu_seconds(server.proc.pid)
        res = asyncio.run(run(server.url, tmp / "hostile.safetensors", args.phase, MAX_PAGE_CHARS))
        cpu = round(cpu_seconds(server.proc.pid) - cpu0, 1)
        alive = server.alive()
    finally:
        server.stop()
    views = res["hostile"].get("views", [])
    out = {"hostile_model": f"{cfg.cell} {cfg.num_layers} × {cfg.hidden_size} (float16)",
           "phase_s": args.phase, "neighbour_alone": summary(res["alone"]),
           "neighbour_beside_hostile": summary(res["beside"]),
           "hostile_upload_s": res["hostile"].get("upload_s"),
           "hostile_views": views, "hostile_exceptions": sum(v["exceptions"] for v in views),
           "server_cpu_s": cpu, "server_alive": alive,
           "server_tracebacks": len(re.findall(r"^Traceback", (tmp / "server.log").read_text(
               errors="replace"), re.M))}
    a, b = out["neighbour_alone"]["p95_s"], out["neighbour_beside_hostile"]["p95_s"]
    out["p95_increase_s"] = round(b - a, 3) if a is not None and b is not None else None
    text = json.dumps(out, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if alive and not out["hostile_exceptions"] else 1


if __name__ == "__main__":
    sys.exit(main())
