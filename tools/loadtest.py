#!/usr/bin/env python
"""Load and isolation test of the rnnviz page (issue 7). Not a pytest test: run it by hand.

    python tools/loadtest.py                          # 20 sessions × 120 s, then 500-text cache check
    python tools/loadtest.py --sessions 3 --duration 20 --cache-texts 0     # smoke run
    python tools/loadtest.py --url http://127.0.0.1:8080 --cookie SERVERID   # an app already running
                                    # (behind a load balancer: tools/replicas.py does this for you)
    python tools/loadtest.py --client protocol --think 15 30 --cache-texts 0   # no browsers: the
                                    # server's side alone (tools/load_protocol.py)
    python tools/loadtest.py --client protocol --sessions 40 --burst 30 3 --cache-texts 0
                                    # rounds: every 30 s all 40 act within 3 s ("now type")

What it does, all on 127.0.0.1 and bounded in time (it stops by itself):

1. Starts ``streamlit run app.py`` on a free loopback port (checkpoints: ``--checkpoint-dir`` or the
   shipped ``checkpoints/``) and samples the server's RSS every 0.5 s (psutil if installed, else
   ``/proc/<pid>/status`` VmRSS; the process tree too, since some views use child processes).
2. Opens N browser contexts (separate Streamlit sessions) in Debian's Chromium via Playwright. The
   sessions spread over the shipped checkpoints. Each session, until the deadline: commits a new
   text (Ctrl+Enter) containing its own unique token, or switches to a random view; then waits
   until the script run is over and every Plotly chart carries the digest of the new text
   (``layout.meta.rnnviz``, set by ``app_pages/ui/charts.show_chart``). That wait is the *update
   latency* (p50/p95 reported separately for text commits and view switches).
3. Counts errors: exception elements (``stException``), browser console errors, page errors, and
   updates that did not finish within ``--update-timeout``.
4. Checks isolation: no session's page ever shows another session's token; ``--uploaders``
   sessions upload their own checkpoint, and at the end every session opens its checkpoint list:
   an upload must appear only in its uploader's list.
5. Cache bound: in a fresh interpreter, traces ``--cache-texts`` distinct texts through the app's
   own cached function (``app_pages.ui.cache.cached_trace``, the same byte-bounded store as the
   server) and reports RSS as it goes; lists every ``st.cache_data``/``st.cache_resource`` in
   app_pages/ with its ``max_entries``/``ttl``.

Prints a JSON summary (and writes it with ``--json PATH``); exit status 1 if any error or leak.

This file is the command line and the run (app server, RSS/CPU around the sessions); the browser
sessions are in tools/load_session.py, the cache check in tools/load_cache.py, the summary's
figures and the server-log reading in tools/load_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# (after the path fix, so that ``python tools/loadtest.py`` finds the tools package)
from tools.load_cache import cache_bounds, cache_check  # noqa: E402
from tools.load_report import error_count, finish, load_figures, server_errors  # noqa: E402
from tools.load_protocol import run_sessions as run_protocol_sessions  # noqa: E402
from tools.load_session import Stats, make_uploads, run_sessions  # noqa: E402
from tools.procstats import RssSampler, cpu_by_program, cpu_seconds  # noqa: E402
from tools.serve import AppServer  # noqa: E402


# --------------------------------------------------------------------------- server
class Server(AppServer):
    """The app (tools.serve.AppServer) with its output in ``log_path``; optional checkpoint dir."""

    def __init__(self, checkpoint_dir: Path | None, log_path: Path):
        self.log = open(log_path, "wb")
        env = {"RNNVIZ_CHECKPOINT_DIR": str(checkpoint_dir)} if checkpoint_dir else {}
        super().__init__(REPO / "app.py", env, log=self.log)

    def stop(self) -> None:
        super().stop()
        self.log.close()


class ExternalServer:
    """An app already running at ``url`` (``--url``, e.g. replicas behind a load balancer): not
    started or stopped here, and its memory and CPU are the caller's to measure."""

    proc = None

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def alive(self) -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(self.url + "/_stcore/health", timeout=10) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        pass


# --------------------------------------------------------------------------- command line and run
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    ap.add_argument("--duration", type=float, default=120, help="seconds of load after ramp-up (120)")
    ap.add_argument("--ramp", type=float, default=20, help="seconds over which sessions start (20)")
    ap.add_argument("--stagger", action=argparse.BooleanOptionalAction, default=True,
                    help="start each session's actions at a random phase within one think interval "
                         "(default); --no-stagger: all sessions act at once when the load starts")
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                    help="pause between a session's actions, uniform in [MIN, MAX] s")
    ap.add_argument("--burst", type=float, nargs=2, default=None, metavar=("PERIOD", "SPREAD"),
                    help="act in rounds instead of after a think pause: every PERIOD s all sessions "
                         "act once, each within SPREAD s of the round's start (a class told \"now "
                         "type\"); an update that outlasts its round skips the next")
    ap.add_argument("--client", choices=("browser", "protocol"), default="browser",
                    help="browser: Chromium sessions (default); protocol: Streamlit's websocket "
                         "protocol without a browser (tools/load_protocol.py): the server's side of "
                         "each update alone, as when the students' browsers run on their laptops "
                         "(no uploads)")
    ap.add_argument("--browser-nice", type=int, default=0, metavar="N",
                    help="run the browsers at CPU priority N (e.g. 19; their process and their session's "
                         "autogroup) so the server is served first, as if the browsers were on "
                         "other machines (default 0: equal priority)")
    ap.add_argument("--stay", default=None, metavar="VIEW",
                    help="protocol client: every session opens this view (its URL path, e.g. "
                         "gradients) and only commits texts there: one view's cost under load")
    ap.add_argument("--text-chars", type=int, default=0, metavar="N",
                    help="pad every committed text to at least N characters (default: 40-150)")
    ap.add_argument("--update-timeout", type=float, default=60, help="an update slower than this is an error")
    ap.add_argument("--uploaders", type=int, default=2, help="sessions that upload their own checkpoint")
    ap.add_argument("--checkpoint-dir", type=Path, default=None, help="default: the shipped checkpoints/")
    ap.add_argument("--models", default="timemachine-lstm,timemachine-gru,timemachine-rnn",
                    help="checkpoints the sessions spread over (comma-separated)")
    ap.add_argument("--cache-texts", type=int, default=500, help="distinct texts for the cache check (0: skip)")
    ap.add_argument("--cache-chars", type=int, default=1000, help="characters per cache-check text")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--url", default=None,
                    help="drive the app already running at this URL (e.g. a load balancer) instead "
                         "of starting one; server RSS/CPU are then not measured here")
    ap.add_argument("--cookie", default=None, metavar="NAME",
                    help="report the values of this cookie each session held (an affinity cookie)")
    args = ap.parse_args(argv)
    args.sessions = max(0, min(args.sessions, 100))   # 0: only the cache check
    args.duration = max(1.0, min(args.duration, 1800.0))
    if args.client == "protocol":
        args.uploaders = 0                             # the protocol sessions upload nothing
    elif args.stay:
        ap.error("--stay needs --client protocol")
    return args


def start_server(args, tmp: Path) -> Server | ExternalServer:
    """The app to drive: started here, or the one at ``--url``."""
    if args.url:
        return ExternalServer(args.url)
    return Server(args.checkpoint_dir, tmp / "server.log")


def drive(server: Server | ExternalServer, sampler: RssSampler, out: dict, args, model_keys: list[str],
          views: list[str], uploads: list[Path], max_chars: int) -> Stats:
    """The browser sessions against ``server``; its RSS at the start, its CPU use and whether it
    survived go into ``out``."""
    pid = sampler.pid
    time.sleep(1.0)
    out["rss_start_mb"] = round(sampler.last(), 1)
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    programs0 = cpu_by_program()
    sessions = run_sessions if args.client == "browser" else run_protocol_sessions
    stats = asyncio.run(sessions(server, args, model_keys, views, uploads, max_chars))
    # processes that ended (the browsers, after closing) are gone from /proc: take the peak
    out["cpu_by_program_s"] = dict(sorted(
        ((k, round(v - programs0.get(k, 0.0), 1)) for k, v in stats.cpu_programs.items()
         if v - programs0.get(k, 0.0) >= 1.0), key=lambda kv: -kv[1]))
    out["own_programs"] = stats.own_programs
    out["server_alive"] = server.alive()
    # How much of the 2 cores the server itself used (the rest: browsers, other processes).
    out["server_cpu_s"] = round(cpu_seconds(pid) - cpu0, 1) if server.proc else None
    if server.proc:
        out["server_cpu_share"] = round(out["server_cpu_s"] / max(1e-9, time.monotonic() - wall0), 2)
    try:
        out["loadavg_end"] = os.getloadavg()[0]
    except OSError:
        pass
    return stats


def run_load(args, model_keys: list[str], views: list[str], uploads: list[Path], tmp: Path,
             max_chars: int) -> dict:
    """Start the app (or use ``--url``), run the sessions while sampling its RSS; the figures."""
    server = start_server(args, tmp)
    pid = server.proc.pid if server.proc else os.getpid()   # external: the figures are not the app's
    out: dict = {"url": server.url if args.url else None}
    sampler = RssSampler(pid)
    if server.proc:
        sampler.start()
    t0 = time.monotonic()
    try:
        stats = drive(server, sampler, out, args, model_keys, views, uploads, max_chars)
    finally:
        if server.proc:
            sampler.stop()
        server.stop()
    out.update(load_figures(stats, sampler, len(uploads), t0))
    if not server.proc:     # an external app's memory is measured by whoever started it
        out.update(rss_start_mb=None, rss_peak_mb=None, rss_peak_tree_mb=None, rss_end_mb=None,
                   rss_series=[])
    if args.cookie:
        out["cookie"] = args.cookie
        out["cookie_values_per_session"] = {str(k): sorted(v) for k, v in sorted(stats.cookies.items())}
    updates = out["text_updates"] + out["view_switches"]
    # The server's own cost per update (its CPU, apart from the browsers' on the same cores).
    out["server_cpu_s_per_update"] = (round(out["server_cpu_s"] / updates, 3)
                                      if out.get("server_cpu_s") is not None and updates else None)
    out["server_errors"] = server_errors(tmp / "server.log")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.alarm(int(args.ramp + args.duration + 2400))   # hard stop, whatever happens

    sys.path.insert(0, str(REPO))
    from app_pages.ui.params import VIEWS
    from app_pages.ui.text import MAX_PAGE_CHARS

    views = [v.url_path for v in VIEWS if v.url_path]   # the sessions click the sidebar's links
    if args.stay is not None and args.stay not in views:
        print(f"--stay: no view {args.stay!r}; choose from {views}", file=sys.stderr)
        return 2
    model_keys = [m for m in args.models.split(",") if m]
    summary: dict = {"sessions": args.sessions, "duration_s": args.duration, "ramp_s": args.ramp,
                     "views": views, "models": model_keys, "host": os.uname().nodename,
                     "cpus": os.cpu_count(), "think_s": list(args.think), "stagger": args.stagger,
                     "burst_s": list(args.burst) if args.burst else None,
                     "client": args.client, "text_chars": args.text_chars, "stay": args.stay,
                     "browser_nice": args.browser_nice}
    tmp = Path(tempfile.mkdtemp(prefix="rnnviz-load-"))
    summary["cache_bounds"] = cache_bounds()
    if args.sessions == 0:
        summary["cache_check"] = cache_check(args.cache_texts, args.cache_chars, model_keys[0],
                                             args.checkpoint_dir)
        return finish(summary, args.json, bad=0)
    uploads = make_uploads(min(args.uploaders, args.sessions), tmp, model_keys[0], args.checkpoint_dir)
    summary.update(run_load(args, model_keys, views, uploads, tmp, MAX_PAGE_CHARS))
    if args.cache_texts > 0:
        summary["cache_check"] = cache_check(args.cache_texts, args.cache_chars, model_keys[0],
                                             args.checkpoint_dir)
    return finish(summary, args.json, error_count(summary))


if __name__ == "__main__":
    sys.exit(main())
