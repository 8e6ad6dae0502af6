"""The load test's report (used by tools/loadtest.py; ``server_errors`` by tools/replicas.py too).

Percentiles (``pct``), the figures of a load run from its counters and RSS samples
(``load_figures``), the exceptions in a server log (``server_errors``), the error count that
decides the exit status (``error_count``) and the JSON output (``finish``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))], 3)

def load_figures(stats, sampler, uploaders: int, t0: float) -> dict:
    """Latencies, error counts and RSS of a load run: its ``Stats`` (tools/load_session.py), the
    server's ``RssSampler`` and the run's start (``time.monotonic()``)."""
    peak, peak_tree = sampler.peak()
    return {
        "wall_s": round(time.monotonic() - t0, 1),
        "load_period_s": round(stats.load_ended - stats.load_started, 1),
        "load_period_unix": [round(t + time.time() - time.monotonic(), 2)
                             for t in (stats.load_started, stats.load_ended)],
        "actions": stats.actions,
        "text_updates": len(stats.text_latency), "view_switches": len(stats.view_latency),
        "distinct_texts": len(stats.texts),
        "text_p50_s": pct(stats.text_latency, 50), "text_p95_s": pct(stats.text_latency, 95),
        "text_max_s": round(max(stats.text_latency), 3) if stats.text_latency else None,
        "view_p50_s": pct(stats.view_latency, 50), "view_p95_s": pct(stats.view_latency, 95),
        "all_p95_s": pct(stats.text_latency + stats.view_latency, 95),
        "exceptions": len(stats.exceptions), "console_errors": len(stats.console_errors),
        "page_errors": len(stats.page_errors), "timeouts": len(stats.timeouts),
        "stale_charts": len(stats.stale_charts),
        "token_leaks": len(stats.leaks), "upload_leaks": len(stats.upload_leaks),
        "upload_failures": len(stats.upload_failures), "uploaders": uploaders,
        "rss_peak_mb": round(peak, 1), "rss_peak_tree_mb": round(peak_tree, 1),
        "rss_end_mb": round(sampler.last(), 1),
        "details": {"exceptions": stats.exceptions[:10], "console_errors": stats.console_errors[:10],
                    "page_errors": stats.page_errors[:10], "timeouts": stats.timeouts[:10],
                    "stale_charts": stats.stale_charts[:10],
                    "leaks": (stats.leaks + stats.upload_leaks)[:10],
                    "upload_failures": stats.upload_failures[:10]},
        "rss_series": [[round(t, 1), round(m, 1)] for t, m, _ in sampler.samples[::20]],
        "runs_by_view": dict(sorted(stats.runs_by_view.items())),   # protocol client only
        "updates": sorted(stats.updates),   # [start s into the load, session, kind, latency s]
    }


def server_errors(log: Path, limit: int = 10) -> list[str]:
    """The last line of each traceback in the server log (the page itself redacts error details
    when ``client.showErrorDetails`` is "none"), with the app frame it came from."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out, frame = [], ""
    in_tb = False
    for line in lines:
        if line.startswith("Traceback"):
            in_tb, frame = True, ""
        elif in_tb and line.strip().startswith("File ") and "/work/" in line or (in_tb and "app_pages" in line):
            frame = line.strip()
        elif in_tb and line and not line.startswith((" ", "\t")):
            out.append(f"{line.strip()[:200]}  [{frame[:160]}]")
            in_tb = False
    counts: dict[str, int] = {}
    for e in out:
        counts[e] = counts.get(e, 0) + 1
    return [f"{n}× {e}" for e, n in list(counts.items())[:limit]]

def error_count(summary: dict) -> int:
    """Exceptions, page errors, timeouts, stale charts, leaks, failed uploads, and 1 if the server
    died."""
    return (summary["exceptions"] + summary["page_errors"] + summary["timeouts"] + summary["stale_charts"]
            + summary["token_leaks"]
            + summary["upload_leaks"] + summary["upload_failures"] + (0 if summary["server_alive"] else 1))


def finish(summary: dict, json_path: Path | None, bad: int) -> int:
    """Print the summary (and write it to ``json_path``); the exit status: 1 if ``bad``."""
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n", encoding="utf-8")
    return 1 if bad else 0
