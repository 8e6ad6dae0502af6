#!/usr/bin/env python
"""Soak test (issue 27): many sessions for minutes, a mix of ordinary use, trainings, heavy requests
and hostile links; reports the ordinary sessions' latency, the server's RSS and threads over time,
errors and tracebacks. Not a pytest test: run it by hand (it stops by itself).

    python -m tools.soak                                   # 20 sessions, 600 s (the full soak)
    python -m tools.soak --sessions 8 --duration 120       # a short one
    python -m tools.soak --url http://127.0.0.1:8501       # an app already running

Sessions use Streamlit's websocket protocol (tools/st_protocol.py, no browsers), by role (i % 10):
0-5 and 9 ordinary (commit a new text or switch views, think 1-4 s; their update latency is the
p95 reported; an update over --update-timeout counts as that many seconds, and the user opens a
fresh session), 6 training (Train on the shipped corpus, poll, train again when done), 7 hostile
links (a fresh session per link: non-ASCII digits, markup, over-long values, catastrophic regexes,
huge lengths), 8 heavy (Gradients over long texts, the 'pattern' unit order, Units' regex finder).
Uploads are exercised by the browser load test (tools/loadtest.py --uploaders).

The report (JSON on stdout, and ``--json PATH``): p50/p95/max of the ordinary updates, RSS and
thread count of the server every ``--every`` s, errors (exception elements, runs that did not
finish, timeouts), tracebacks in the server's log, and whether the server stayed up. Exit status
1 on any traceback, exception element, restart, or an ordinary p95 over ``--p95-limit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.procstats import RssSampler  # noqa: E402
from tools.serve import AppServer  # noqa: E402
from tools.st_protocol import FINISHED_OK, ProtocolSession  # noqa: E402

VIEWS = ["", "predictions", "gradients", "step", "units", "lesson", "generate", "compare"]
WORDS = "the time traveller machine was expounding a recondite matter to us grey eyes".split()
HOSTILE = [{"hs.unit": "١٢"}, {"gr.len": "1_0"}, {"gen.temp": "５"}, {"text": "<script>x</script>" * 40},
           {"units.re": "(a+)+$", "text": "a" * 3000 + "!"}, {"gr.len": "9" * 70}, {"cmp.models": "a," * 200},
           {"ckpt": "upload:0123456789abcdef"}, {"hs.start": "-5"}, {"text": "\x00\x01" * 500}]
HOSTILE_PAGES = ["", "units", "gradients", "generate", "compare"]


class Report:
    def __init__(self) -> None:
        self.ordinary: list[float] = []
        self.errors: list[str] = []
        self.counts = {"ordinary": 0, "training": 0, "trainings_started": 0, "hostile": 0, "heavy": 0}


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _check(report: Report, run, who: str) -> None:
    if run.status != FINISHED_OK:
        report.errors.append(f"{who}: run ended with status {run.status}")
    report.errors += [f"{who}: {e}" for e in run.exceptions]


async def _connect(url: str, query: str, timeout: float):
    session = ProtocolSession(url, timeout=timeout)
    await session.connect()
    return session, await session.run(query=query)


async def ordinary(url: str, i: int, end: float, report: Report, args) -> None:
    """Commit texts and switch views until ``end``. An update over ``update_timeout`` counts as
    that many seconds in the latencies (and as an error), and the user opens a fresh session: a
    slow server is measured, not dropped from the figures."""
    rng = random.Random(i)
    while time.monotonic() < end:
        session = ProtocolSession(url, timeout=args.update_timeout)
        try:
            await session.connect()
            run = await session.run(query=urlencode({"text": _text(rng, 8)}))
            text_area = run.widget_id("text_area", "Text")
            while time.monotonic() < end:
                if rng.random() < 0.6 and text_area:
                    run = await session.run(widgets={text_area: _text(rng, rng.randint(10, 60))})
                else:
                    run = await session.run(page=rng.choice(VIEWS))
                report.ordinary.append(run.seconds)
                report.counts["ordinary"] += 1
                _check(report, run, f"ordinary {i}")
                await asyncio.sleep(rng.uniform(1.0, 4.0))
        except (asyncio.TimeoutError, TimeoutError):
            report.ordinary.append(args.update_timeout)
            report.counts["ordinary"] += 1
            report.errors.append(f"ordinary {i}: an update took over {args.update_timeout:.0f} s (counted)")
        finally:
            await session.close()


async def training(url: str, i: int, end: float, report: Report, args) -> None:
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    session, run = await _connect(url, "", args.update_timeout)
    try:
        run = await session.run(page="train")
        while time.monotonic() < end:
            button = run.widget_id("button", "Train")
            if button:
                session.widgets[button] = WidgetState(id=button, trigger_value=True)
                run = await session.run()
                session.widgets.pop(button, None)
                report.counts["trainings_started"] += 1
            _check(report, run, f"training {i}")
            for _ in range(12):                          # poll for a minute, as the page does
                if time.monotonic() >= end:
                    break
                await asyncio.sleep(5)
                run = await session.run()
                report.counts["training"] += 1
                _check(report, run, f"training {i} poll")
    finally:
        await session.close()


async def hostile(url: str, i: int, end: float, report: Report, args) -> None:
    rng = random.Random(1000 + i)
    while time.monotonic() < end:
        query = urlencode(rng.choice(HOSTILE))
        session, run = await _connect(url, query, args.update_timeout)
        try:
            page = rng.choice(HOSTILE_PAGES)
            if page:
                run = await session.run(query=query, page=page)
            report.counts["hostile"] += 1
            _check(report, run, f"hostile {i} ({query[:60]} on {page or 'default'})")
        finally:
            await session.close()
        await asyncio.sleep(rng.uniform(0.5, 2.0))


async def heavy(url: str, i: int, end: float, report: Report, args) -> None:
    rng = random.Random(2000 + i)
    long_text = _text(rng, 800)
    asks = [("gradients", {"text": long_text, "gr.len": "5000"}), ("", {"text": long_text, "hs.order": "pattern"}),
            ("units", {"text": long_text, "units.feat": "regex", "units.re": r"(\w+\s?)*$"})]
    while time.monotonic() < end:
        page, params = rng.choice(asks)
        session, run = await _connect(url, urlencode(params), args.update_timeout)
        try:
            if page:
                run = await session.run(query=urlencode(params), page=page)
            report.counts["heavy"] += 1
            _check(report, run, f"heavy {i} ({page or 'hidden states'})")
        finally:
            await session.close()
        await asyncio.sleep(rng.uniform(1.0, 3.0))


ROLES = {0: ordinary, 1: ordinary, 2: ordinary, 3: ordinary, 4: ordinary, 5: ordinary, 6: training,
         7: hostile, 8: heavy, 9: ordinary}


async def _guarded(role, url: str, i: int, end: float, report: Report, args) -> None:
    try:
        await role(url, i, end, report, args)
    except (asyncio.TimeoutError, TimeoutError):
        report.errors.append(f"{role.__name__} {i}: an update took over {args.update_timeout:.0f} s")
    except Exception as err:  # noqa: BLE001 — a client failure is a finding, not a crash of the soak
        report.errors.append(f"{role.__name__} {i}: {type(err).__name__}: {err}"[:300])


async def drive(url: str, args, report: Report) -> None:
    end = time.monotonic() + args.duration
    tasks = []
    for i in range(args.sessions):
        tasks.append(asyncio.create_task(_guarded(ROLES[i % 10], url, i, end, report, args)))
        await asyncio.sleep(args.ramp / max(args.sessions, 1))
    await asyncio.gather(*tasks)


def _threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _series(sampler: RssSampler, threads: list[tuple[float, int]], every: float) -> list[dict]:
    out, next_t = [], 0.0
    for t, main, tree in sampler.samples:
        if t >= next_t:
            near = min(threads, key=lambda x: abs(x[0] - t), default=(t, 0))
            out.append({"t": round(t), "rss_mib": round(main), "tree_mib": round(tree), "threads": near[1]})
            next_t = t + every
    return out


def summary(report: Report, sampler, threads, log_text: str, alive: bool, args) -> dict:
    lat = sorted(report.ordinary)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else None
    series = _series(sampler, threads, args.every) if sampler else []
    half = [s["rss_mib"] for s in series[len(series) // 2:]]
    out = {"sessions": args.sessions, "duration_s": args.duration, "counts": report.counts,
           "ordinary_p50_s": round(statistics.median(lat), 3) if lat else None,
           "ordinary_p95_s": round(p95, 3) if p95 is not None else None,
           "ordinary_max_s": round(lat[-1], 3) if lat else None,
           "rss_peak_mib": max((s["rss_mib"] for s in series), default=None),
           "rss_second_half_spread_mib": (max(half) - min(half)) if half else None,
           "threads_peak": max((s["threads"] for s in series), default=None),
           "tracebacks": log_text.count("Traceback (most recent call last)"),
           "errors": len(report.errors), "error_samples": report.errors[:20],
           "server_alive_at_end": alive, "series": series}
    out["ok"] = (out["tracebacks"] == 0 and alive and not any("Exception" in e or "status" in e
                                                               for e in report.errors)
                 and (p95 is None or p95 <= args.p95_limit))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--ramp", type=float, default=20.0, help="seconds over which sessions start")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between reported RSS samples")
    ap.add_argument("--update-timeout", type=float, default=90.0)
    ap.add_argument("--p95-limit", type=float, default=1.5, help="ordinary p95 above this fails (s)")
    ap.add_argument("--url", default=None, help="an app already running (its RSS is not measured)")
    ap.add_argument("--json", default=None, help="also write the report here")
    return ap.parse_args(argv)


def _sample_threads(pid: int, threads: list, stop_at: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() < stop_at:
        threads.append((time.monotonic() - t0, _threads(pid)))
        time.sleep(2.0)


def main(argv: list[str] | None = None) -> int:
    import threading
    args = parse_args(argv)
    report, sampler, threads, log_text, alive = Report(), None, [], "", True
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        server = None
        if args.url is None:
            log = open(log_path, "wb")
            server = AppServer(REPO / "app.py", {}, log=log)
            sampler = RssSampler(server.proc.pid, every=1.0)
            sampler.start()
            threading.Thread(target=_sample_threads, daemon=True,
                             args=(server.proc.pid, threads, time.monotonic() + args.duration + args.ramp + 60)).start()
        try:
            asyncio.run(drive(args.url or server.url, args, report))
        finally:
            if server is not None:
                alive = server.proc.poll() is None
                sampler.stop()
                server.stop()
                log.close()
                log_text = log_path.read_text(errors="replace")
    out = summary(report, sampler, threads, log_text, alive, args)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
