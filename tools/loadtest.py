#!/usr/bin/env python
"""Load and isolation test of the rnnviz page (issue 7). Not a pytest test: run it by hand.

    python tools/loadtest.py                          # 20 sessions × 120 s, then 500-text cache check
    python tools/loadtest.py --sessions 3 --duration 20 --cache-texts 0     # smoke run
    python tools/loadtest.py --url http://127.0.0.1:8080 --cookie SERVERID   # an app already running
                                    # (behind a load balancer: tools/replicas.py does this for you)

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
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tools.procstats import RssSampler, cpu_by_program, cpu_seconds, descendants, rss_mb  # noqa: E402,F401
from tools.serve import CHROMIUM, CHROMIUM_ARGS, AppServer  # noqa: E402  (after the path fix)
WORDS = ("the time traveller as we shall call him for now was explaining "
         "a curious idea to us his dark eyes were bright and his face was eager as the lamp burned low and the small machine of brass and crystal glittered on the table between our glasses").split()

#: Run over (no "Running"/"Stop" in the status widget), every chart shows ``digest`` or is marked
#: text_independent, and after a view switch the new view's path with none of the old charts left.
WAIT_JS = """([digest, textParam, viewPath]) => {
  if (textParam !== null && new URLSearchParams(location.search).get('text') !== textParam) return false;
  const norm = p => p.replace(/\\/$/, '');
  // After a view switch: the new view's path, and none of the old view's charts left (MARK_OLD_JS
  // flagged the charts on the page before the click; they carry the same digest as the new ones).
  if (viewPath !== null && norm(location.pathname) !== norm(viewPath)) return false;
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  if (w && /Running|Stop/.test(w.innerText)) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  const els = [...document.querySelectorAll('.js-plotly-plot')];
  if (viewPath !== null && els.some(e => e.__rnnvizOld)) return false;
  // Charts marked text_independent (e.g. the W_hh spectrum) keep their drawing across text
  // commits; every other chart must carry the new text's digest.
  return els.every(e => e.layout && e.layout.meta && e.querySelector('.main-svg')
                        && (e.layout.meta.rnnviz === digest || e.layout.meta.text_independent === true));
}"""
MARK_OLD_JS = "() => document.querySelectorAll('.js-plotly-plot').forEach(e => { e.__rnnvizOld = true; })"


# --------------------------------------------------------------------------- server and memory
class Server(AppServer):
    """The app (tools.serve.AppServer) with its output in ``log_path``; optional checkpoint dir."""

    def __init__(self, checkpoint_dir: Path | None, log_path: Path, run_log: Path | None = None):
        self.log = open(log_path, "wb")
        env = {"RNNVIZ_CHECKPOINT_DIR": str(checkpoint_dir)} if checkpoint_dir else {}
        if run_log is not None:   # the app appends one line per script run (app_pages/ui/startup.py)
            env["RNNVIZ_RUN_LOG"] = str(run_log)
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


def digest(model_key: str, text: str, max_chars: int) -> str:
    """The digest ``app_pages/ui/sidebar.sidebar`` puts on every chart (model key + traced text)."""
    text = text[:max_chars]
    return hashlib.sha256(f"{model_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def token_for(i: int) -> str:
    """A unique, letters-only token (d2l models keep letters), unlikely to occur by chance."""
    return "zq" + chr(97 + (i // 26) % 26) + chr(97 + i % 26) + "xj"


class Stats:
    def __init__(self):
        self.text_latency: list[float] = []
        self.view_latency: list[float] = []
        self.updates: list[tuple[float, int, str, float]] = []  # (start s into the load, session, kind, s)
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.timeouts: list[str] = []
        self.leaks: list[str] = []
        self.upload_leaks: list[str] = []
        self.upload_failures: list[str] = []
        self.texts: set[str] = set()
        self.actions = 0
        self.load_started = self.load_ended = 0.0
        self.cpu_programs: dict[str, float] = {}
        self.cookies: dict[int, set[str]] = {}    # --cookie: the values each session was given


async def note_cookie(ctx, sid: int, name: str | None, stats: Stats) -> None:
    """Record the value of cookie ``name`` (a load balancer's affinity cookie) this session holds."""
    if name:
        for c in await ctx.cookies():
            if c["name"] == name:
                stats.cookies.setdefault(sid, set()).add(c["value"])


async def wait_update(page, dg: str, text_param: str | None, timeout_s: float,
                      view_path: str | None = None) -> None:
    await page.wait_for_function(WAIT_JS, arg=[dg, text_param, view_path], timeout=timeout_s * 1000,
                                 polling=100)


async def check_page(page, sid: int, tokens: list[str], stats: Stats, what: str) -> None:
    exc = await page.locator("[data-testid='stException']").all_inner_texts()
    for e in exc:
        stats.exceptions.append(f"session {sid} {what}: {e[:300]}")
    body = await page.evaluate("() => document.body.innerText + '\\n' + [...document.querySelectorAll("
                               "'textarea, input')].map(e => e.value).join('\\n')")
    for j, tok in enumerate(tokens):
        if j != sid and tok in body:
            stats.leaks.append(f"session {sid} saw token of session {j} ({what})")


async def read_checkpoint_options(page) -> list[str]:
    box = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    await box.click()
    opts = page.locator("[role='option']")
    await opts.first.wait_for(timeout=10_000)
    names = await opts.all_inner_texts()
    await page.keyboard.press("Escape")
    return names


class Clock:
    """Sessions connect first; the load period starts when all are ready (or after the ramp)."""

    def __init__(self, sessions: int, duration: float):
        self.waiting, self.duration = sessions, duration
        self.go = asyncio.Event()
        self.deadline = float("inf")

    def ready(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.start()

    def start(self) -> None:
        if not self.go.is_set():
            self.deadline = time.monotonic() + self.duration
            self.go.set()


async def session(sid: int, browser, url: str, model_key: str, tokens: list[str], views: list[str],
                  upload: Path | None, clock: Clock, args, stats: Stats, max_chars: int) -> None:
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    page.on("console", lambda m: stats.console_errors.append(f"session {sid}: {m.text[:200]}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: stats.page_errors.append(f"session {sid}: {str(e)[:200]}"))
    rng = random.Random(sid)
    token = tokens[sid]
    try:
        text = token
        await page.goto(f"{url}/?ckpt={model_key}&text={token}", timeout=120_000)
        await page.wait_for_selector("[data-testid='stSidebar'] textarea", timeout=120_000)
        await wait_update(page, digest(model_key, text, max_chars), text, 120)
        await note_cookie(ctx, sid, args.cookie, stats)
        area = page.locator("[data-testid='stSidebar'] [data-testid='stTextArea'] textarea")
        if upload is not None:
            await page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
            try:
                await page.locator("[data-testid='stAlertContentSuccess']").filter(
                    has_text=upload.name).wait_for(timeout=args.update_timeout * 1000)
            except Exception:
                stats.upload_failures.append(f"session {sid}: upload not confirmed")
            # a valid upload is selected at once (issue 16): the charts now carry its model key
            model_key = "upload:" + hashlib.sha256(upload.read_bytes()).hexdigest()[:16]
        clock.ready()
        await clock.go.wait()
        if args.stagger:
            # A random phase within one think interval, so 20 sessions do not all act in the same
            # instant when the load period starts (that burst is what --no-stagger measures).
            await asyncio.sleep(rng.uniform(0, args.think[1]))
        n = 0
        while time.monotonic() < clock.deadline:
            n += 1
            if rng.random() < 0.65:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
                text = f"{words} {token} {n} {words}"
                await area.fill(text)
                t0 = time.monotonic()
                await area.press("Control+Enter")
                kind, param, view_path = "text", text, None
            else:
                links = page.locator("[data-testid='stSidebarNav'] a")
                # another view than the one shown (clicking the current one need not redraw anything)
                others = await page.evaluate("""() => [...document.querySelectorAll(
                    "[data-testid='stSidebarNav'] a")].map(a => new URL(a.href).pathname)""")
                here = (await page.evaluate("() => location.pathname")).rstrip("/")
                choices = [i for i, p in enumerate(others) if p.rstrip("/") != here] or [0]
                k = rng.choice(choices)
                await page.evaluate(MARK_OLD_JS)
                t0 = time.monotonic()
                kind, param, view_path = "view", None, others[k] if others else None
                try:
                    await links.nth(k).click(timeout=args.update_timeout * 1000)
                except Exception as err:
                    stats.timeouts.append(f"session {sid}: could not click view link {k}: {str(err)[:120]}")
                    continue
            try:
                await wait_update(page, digest(model_key, text, max_chars), param, args.update_timeout,
                                  view_path)
                dt = time.monotonic() - t0
                (stats.text_latency if kind == "text" else stats.view_latency).append(dt)
                stats.updates.append((round(t0 - (clock.deadline - clock.duration), 2), sid, kind, round(dt, 3)))
                if kind == "text":
                    stats.texts.add(text)
            except Exception:
                stats.timeouts.append(f"session {sid} {kind} update > {args.update_timeout:.0f} s")
            stats.actions += 1
            await check_page(page, sid, tokens, stats, f"after {kind} #{n}")
            await note_cookie(ctx, sid, args.cookie, stats)
            await asyncio.sleep(rng.uniform(*args.think))
        # Isolation of uploads: this session's checkpoint list holds only its own upload (if any).
        try:
            names = await read_checkpoint_options(page)
            for name in names:
                if "(uploaded)" in name and (upload is None or upload.name not in name):
                    stats.upload_leaks.append(f"session {sid} lists {name!r}")
            if upload is not None and not any(upload.name in nm for nm in names):
                stats.upload_failures.append(f"session {sid}: own upload missing from its list")
        except Exception as err:
            stats.upload_failures.append(f"session {sid}: could not read checkpoint list: {err}")
    finally:
        await ctx.close()


def make_uploads(n: int, out_dir: Path, base: str) -> list[Path]:
    """Valid checkpoints (distinct bytes) named after their uploader's token."""
    sys.path.insert(0, str(REPO))
    import rnnviz
    from rnnviz.checkpoint import checkpoint_dir

    paths = []
    src = rnnviz.load_model(base) if (checkpoint_dir() / f"{base}.safetensors").is_file() else None
    for i in range(n):
        cfg = src.config if src is not None else rnnviz.ModelConfig(
            "gru", 16, 1, tuple(rnnviz.Vocab.from_text(" ".join(WORDS)).tokens))
        model = rnnviz.build_model(cfg, seed=1000 + i)
        path = out_dir / f"upload-{token_for(i)}.safetensors"
        rnnviz.save_checkpoint(model, path, {"corpus": f"loadtest upload {i}"})
        paths.append(path)
    return paths


async def run_sessions(server: Server | ExternalServer, args, model_keys: list[str], views: list[str],
                       uploads: list[Path], max_chars: int) -> Stats:
    from playwright.async_api import async_playwright

    stats = Stats()
    tokens = [token_for(i) for i in range(args.sessions)]
    exe = CHROMIUM
    if args.browser_nice:
        # Browsers at a lower CPU priority: the server gets the cores first, as it would on its own
        # machine with the students' browsers elsewhere (the browsers still run, on what is left).
        wrapper = Path(tempfile.mkdtemp(prefix="rnnviz-nice-")) / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(args.browser_nice)} "{CHROMIUM}" "$@"\n')
        wrapper.chmod(0o755)
        exe = str(wrapper)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            clock = Clock(args.sessions, args.duration)
            tasks = []
            for i in range(args.sessions):
                up = uploads[i] if i < len(uploads) else None
                tasks.append(asyncio.create_task(session(
                    i, browser, server.url, model_keys[i % len(model_keys)], tokens, views, up,
                    clock, args, stats, max_chars)))
                await asyncio.sleep(args.ramp / max(1, args.sessions))
            # Sessions that are not connected 180 s after the ramp do not hold the others back.
            try:
                await asyncio.wait_for(clock.go.wait(), timeout=180)
            except asyncio.TimeoutError:
                clock.start()
            stats.load_started = time.monotonic()
            done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                          timeout=args.duration + 300)
            stats.load_ended = time.monotonic()
            stats.cpu_programs = cpu_by_program()     # before the browsers close and vanish
            for i, res in enumerate(done):
                if isinstance(res, BaseException):
                    stats.timeouts.append(f"session {i} crashed: {type(res).__name__}: {str(res)[:200]}")
        finally:
            await browser.close()
    return stats


# --------------------------------------------------------------------------- cache bound
CACHE_SCRIPT = r"""
import json, os, random, sys, time
P = json.loads(sys.argv[1])
sys.path.insert(0, P["repo"])
import streamlit as st
from app_pages.ui import cache
from rnnviz.checkpoint import checkpoint_dir

def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
words, N, LENGTH = P["words"], P["n"], P["length"]
rng = random.Random(0)
key = P["model"]
model = cache.shipped_model(key)
ref = cache.get_ref(key, model)
base = rss()
series = []
for i in range(N):
    body = " ".join(rng.choice(words) for _ in range(LENGTH // 4))
    text = (f"{i} " + body)[:LENGTH]
    cache.cached_trace(ref, model, text)
    if (i + 1) % 50 == 0:
        series.append([i + 1, round(rss(), 1)])
print(json.dumps({"base_mb": round(base, 1), "series": series, "final_mb": round(rss(), 1)}))
"""


def _bound(where: str, kind: str, args: str) -> dict:
    me = re.search(r"max_entries\s*=\s*([\w.]+)", args)
    ttl = re.search(r"ttl\s*=\s*([\w.\"']+)", args)
    return {"where": where, "kind": kind, "max_entries": me.group(1) if me else None,
            "ttl": ttl.group(1) if ttl else None}


def cache_bounds() -> list[dict]:
    """Every st.cache_data / st.cache_resource in app_pages/ with its max_entries and ttl, and every
    byte-bounded store (rnnviz.cache.ByteLRU) in app_pages/ (held by a cache_resource) or rnnviz/."""
    decorated = re.compile(r"@st\.(cache_data|cache_resource)(\((?P<args>[^)]*)\))?\s*\n\s*def (?P<fn>\w+)")
    held = re.compile(r"def (?P<fn>\w+)\(\) -> ByteLRU:.*?return ByteLRU\((?P<args>[^)]*)\)", re.S)
    module_level = re.compile(r"^(?P<fn>\w+) = ByteLRU\((?P<args>[^)]*)\)", re.M)
    out = []
    for folder, patterns in (("app_pages", (decorated, held)), ("rnnviz", (module_level,))):
        for pat in patterns:
            for path in sorted((REPO / folder).glob("*.py")):
                for m in pat.finditer(path.read_text(encoding="utf-8")):
                    args = m.group("args") or ""
                    kind = m.group(1) if pat is decorated else f"ByteLRU({args.split(',')[0].strip()} bytes)"
                    out.append(_bound(f"{path.relative_to(REPO)}:{m.group('fn')}", kind, args))
    return out


def cache_check(n: int, length: int, model_key: str, checkpoint_dir: Path | None) -> dict:
    env = dict(os.environ)
    if checkpoint_dir:
        env["RNNVIZ_CHECKPOINT_DIR"] = str(checkpoint_dir)
    params = {"repo": str(REPO), "words": WORDS, "n": n, "length": length, "model": model_key}
    out = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, json.dumps(params)], capture_output=True,
                         text=True, env=env, timeout=1800, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr[-1500:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(texts=n, chars_per_text=length, model=model_key)
    return res


# --------------------------------------------------------------------------- main
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))], 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    ap.add_argument("--duration", type=float, default=120, help="seconds of load after ramp-up (120)")
    ap.add_argument("--ramp", type=float, default=20, help="seconds over which sessions start (20)")
    ap.add_argument("--stagger", action=argparse.BooleanOptionalAction, default=True,
                    help="start each session's actions at a random phase within one think interval "
                         "(default); --no-stagger: all sessions act at once when the load starts")
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                    help="pause between a session's actions, uniform in [MIN, MAX] s")
    ap.add_argument("--browser-nice", type=int, default=0, metavar="N",
                    help="run the browsers under `nice -n N` (e.g. 19) so the server is served first, "
                         "as if the browsers were on other machines (default 0: equal priority)")
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
    ap.add_argument("--run-log", type=Path, action="append", default=[], metavar="PATH",
                    help="with --url: the app's RNNVIZ_RUN_LOG file(s) to read script-run times from")
    ap.add_argument("--cookie", default=None, metavar="NAME",
                    help="report the values of this cookie each session held (an affinity cookie)")
    args = ap.parse_args(argv)
    args.sessions = max(0, min(args.sessions, 100))   # 0: only the cache check
    args.duration = max(1.0, min(args.duration, 1800.0))
    signal.alarm(int(args.ramp + args.duration + 2400))   # hard stop, whatever happens

    sys.path.insert(0, str(REPO))
    from app_pages.ui.text import MAX_PAGE_CHARS

    if args.checkpoint_dir:
        os.environ["RNNVIZ_CHECKPOINT_DIR"] = str(args.checkpoint_dir)
    app_src = (REPO / "app.py").read_text(encoding="utf-8")
    views = re.findall(r'url_path="([^"]+)"', app_src)   # the sessions click the sidebar's links
    model_keys = [m for m in args.models.split(",") if m]
    summary: dict = {"sessions": args.sessions, "duration_s": args.duration, "ramp_s": args.ramp,
                     "views": views, "models": model_keys, "host": os.uname().nodename,
                     "cpus": os.cpu_count(), "think_s": list(args.think), "stagger": args.stagger,
                     "browser_nice": args.browser_nice}
    tmp = Path(tempfile.mkdtemp(prefix="rnnviz-load-"))
    summary["cache_bounds"] = cache_bounds()
    if args.sessions == 0:
        summary["cache_check"] = cache_check(args.cache_texts, args.cache_chars, model_keys[0],
                                             args.checkpoint_dir)
        return _finish(summary, args, bad=0)
    uploads = make_uploads(min(args.uploaders, args.sessions), tmp, model_keys[0])
    if args.url:
        server, run_logs = ExternalServer(args.url), args.run_log
    else:
        server, run_logs = Server(args.checkpoint_dir, tmp / "server.log", run_log=tmp / "runs.log"), [tmp / "runs.log"]
    pid = server.proc.pid if server.proc else os.getpid()   # external: the figures are not the app's
    summary["url"] = server.url if args.url else None
    sampler = RssSampler(pid)
    if server.proc:
        sampler.start()
    t0 = time.monotonic()
    try:
        time.sleep(1.0)
        summary["rss_start_mb"] = round(sampler.last(), 1)
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        programs0 = cpu_by_program()
        stats = asyncio.run(run_sessions(server, args, model_keys, views, uploads, MAX_PAGE_CHARS))
        # processes that ended (the browsers, after closing) are gone from /proc: take the peak
        summary["cpu_by_program_s"] = dict(sorted(
            ((k, round(v - programs0.get(k, 0.0), 1)) for k, v in stats.cpu_programs.items()
             if v - programs0.get(k, 0.0) >= 1.0), key=lambda kv: -kv[1]))
        summary["server_alive"] = server.alive()
        # How much of the 2 cores the server itself used (the rest: browsers, other processes).
        summary["server_cpu_s"] = round(cpu_seconds(pid) - cpu0, 1) if server.proc else None
        if server.proc:
            summary["server_cpu_share"] = round(summary["server_cpu_s"] / max(1e-9, time.monotonic() - wall0), 2)
        try:
            summary["loadavg_end"] = os.getloadavg()[0]
        except OSError:
            pass
    finally:
        if server.proc:
            sampler.stop()
        server.stop()
    peak, peak_tree = sampler.peak()
    summary.update({
        "wall_s": round(time.monotonic() - t0, 1),
        "load_period_s": round(stats.load_ended - stats.load_started, 1),
        "actions": stats.actions,
        "text_updates": len(stats.text_latency), "view_switches": len(stats.view_latency),
        "distinct_texts": len(stats.texts),
        "text_p50_s": pct(stats.text_latency, 50), "text_p95_s": pct(stats.text_latency, 95),
        "text_max_s": round(max(stats.text_latency), 3) if stats.text_latency else None,
        "view_p50_s": pct(stats.view_latency, 50), "view_p95_s": pct(stats.view_latency, 95),
        "all_p95_s": pct(stats.text_latency + stats.view_latency, 95),
        "exceptions": len(stats.exceptions), "console_errors": len(stats.console_errors),
        "page_errors": len(stats.page_errors), "timeouts": len(stats.timeouts),
        "token_leaks": len(stats.leaks), "upload_leaks": len(stats.upload_leaks),
        "upload_failures": len(stats.upload_failures), "uploaders": len(uploads),
        "rss_peak_mb": round(peak, 1), "rss_peak_tree_mb": round(peak_tree, 1),
        "rss_end_mb": round(sampler.last(), 1),
        "details": {"exceptions": stats.exceptions[:10], "console_errors": stats.console_errors[:10],
                    "page_errors": stats.page_errors[:10], "timeouts": stats.timeouts[:10],
                    "leaks": (stats.leaks + stats.upload_leaks)[:10],
                    "upload_failures": stats.upload_failures[:10]},
        "rss_series": [[round(t, 1), round(m, 1)] for t, m, _ in sampler.samples[::20]],
        "updates": sorted(stats.updates),   # [start s into the load, session, kind, latency s]
    })
    if not server.proc:     # an external app's memory is measured by whoever started it
        summary.update(rss_start_mb=None, rss_peak_mb=None, rss_peak_tree_mb=None, rss_end_mb=None,
                       rss_series=[])
    if args.cookie:
        summary["cookie"] = args.cookie
        summary["cookie_values_per_session"] = {str(k): sorted(v) for k, v in sorted(stats.cookies.items())}
    # The server's own time per update: wall time of each script run during the load period
    # (logged by the app itself), apart from what the browsers add on the same cores.
    offset = time.time() - time.monotonic()
    runs = [r for log in run_logs
            for r in script_runs(log, stats.load_started + offset, stats.load_ended + offset)]
    summary.update({"server_runs": len(runs), "server_run_p50_s": pct(runs, 50),
                    "server_run_p95_s": pct(runs, 95),
                    "server_run_max_s": round(max(runs), 3) if runs else None})
    summary["server_errors"] = server_errors(tmp / "server.log")
    if args.cache_texts > 0:
        summary["cache_check"] = cache_check(args.cache_texts, args.cache_chars, model_keys[0],
                                             args.checkpoint_dir)
    bad = (summary["exceptions"] + summary["page_errors"] + summary["timeouts"] + summary["token_leaks"]
           + summary["upload_leaks"] + summary["upload_failures"] + (0 if summary["server_alive"] else 1))
    return _finish(summary, args, bad)


def script_runs(log: Path, start: float, end: float) -> list[float]:
    """Durations (s) of the app's script runs that finished between ``start`` and ``end`` (unix)."""
    out = []
    try:
        for line in log.read_text(encoding="utf-8").splitlines():
            stamp, seconds, *_ = line.split(" ", 2)
            if start <= float(stamp) <= end:
                out.append(float(seconds))
    except (OSError, ValueError):
        pass
    return out


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


def _finish(summary: dict, args, bad: int) -> int:
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
