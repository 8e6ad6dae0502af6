"""One load-test browser session, driven through Playwright (used by tools/loadtest.py).

Holds the counters (``Stats``), the start signal (``Clock``), the chart digest and per-session
tokens, and the session itself, split into its steps (the page checks are tools/page_js's):
``SessionRun.setup`` (first page, optional upload), ``commit_text`` / ``switch_view`` (one action
each), ``finish_action`` (wait for the update, time it, check the page) and ``check_uploads`` (the
final upload-isolation check). ``run_sessions`` starts N of them in one Chromium; ``make_uploads``
writes the checkpoints the uploading sessions send.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from tools.procstats import cpu_by_program, programs_of_tree
from tools.page_js import ARM_JS, MARK_OLD_JS, STATE_JS, UPDATE_JS, update_arg
from tools.serve import CHROMIUM, CHROMIUM_ARGS, REPO

WORDS = ("the time traveller as we shall call him for now was explaining "
         "a curious idea to us his dark eyes were bright and his face was eager as the lamp burned low and the small machine of brass and crystal glittered on the table between our glasses").split()



def digest(model_key: str, text: str, max_chars: int) -> str:
    """The digest ``app_pages/ui/sidebar.sidebar`` puts on every chart (model key + traced text)."""
    text = text[:max_chars]
    return hashlib.sha256(f"{model_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def new_text(rng: random.Random, token: str, n: int, min_chars: int = 0) -> str:
    """Action ``n``'s new text: 3–12 random words either side of ``token``, then more words until
    it has ``min_chars`` characters (``--text-chars``: students pasting a paragraph)."""
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
    text = f"{words} {token} {n} {words}"
    while len(text) < min_chars:
        text += " " + rng.choice(WORDS)
    return text


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
        self.stale_charts: list[str] = []     # protocol client: a chart not of the session's text
        self.upload_leaks: list[str] = []
        self.upload_failures: list[str] = []
        self.texts: set[str] = set()
        self.actions = 0
        self.load_started = self.load_ended = 0.0
        self.cpu_programs: dict[str, float] = {}
        self.own_programs: list[str] = []      # programs this load test started (its process tree)
        self.cookies: dict[int, set[str]] = {}    # --cookie: the values each session was given
        self.runs_by_view: dict[str, int] = {}    # protocol client: finished script runs per view


async def note_cookie(ctx, sid: int, name: str | None, stats: Stats) -> None:
    """Record the value of cookie ``name`` (a load balancer's affinity cookie) this session holds."""
    if name:
        for c in await ctx.cookies():
            if c["name"] == name:
                stats.cookies.setdefault(sid, set()).add(c["value"])


async def arm(page) -> None:
    """Call right before an action whose update :func:`wait_update` (``armed=True``) waits for."""
    await page.evaluate(ARM_JS)


async def wait_update(page, dg: str, text_param: str | None, timeout_s: float,
                      view_path: str | None = None, armed: bool = False) -> None:
    """Until the page shows the update (UPDATE_JS); ``armed``: a script run since :func:`arm`."""
    await page.wait_for_function(UPDATE_JS, arg=update_arg(dg, 0, view_path, text_param, armed),
                                 timeout=timeout_s * 1000, polling=100)


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
        self.started = 0.0

    def ready(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.start()

    def start(self) -> None:
        if not self.go.is_set():
            self.started = time.monotonic()
            self.deadline = self.started + self.duration
            self.go.set()


class SessionRun:
    """One session's page and state: the model its charts show, the text last committed, its
    random stream (seeded by the session number, so a run's actions repeat)."""

    def __init__(self, sid: int, ctx, page, model_key: str, tokens: list[str], args, stats: Stats,
                 max_chars: int):
        self.sid, self.ctx, self.page, self.model_key = sid, ctx, page, model_key
        self.tokens, self.args, self.stats, self.max_chars = tokens, args, stats, max_chars
        self.rng = random.Random(sid)
        self.token = tokens[sid]
        self.text = self.token
        self.area = None

    def digest(self) -> str:
        return digest(self.model_key, self.text, self.max_chars)

    async def setup(self, url: str, upload: Path | None) -> None:
        """First page (its own token as the text), then its own checkpoint uploaded, if any."""
        page, args, stats = self.page, self.args, self.stats
        await page.goto(f"{url}/?ckpt={self.model_key}&text={self.token}", timeout=120_000)
        await page.wait_for_selector("[data-testid='stSidebar'] textarea", timeout=120_000)
        await wait_update(page, self.digest(), self.text, 120)
        await note_cookie(self.ctx, self.sid, args.cookie, stats)
        self.area = page.locator("[data-testid='stSidebar'] [data-testid='stTextArea'] textarea")
        if upload is not None:
            await page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
            try:
                await page.locator("[data-testid='stAlertContentSuccess']").filter(
                    has_text=upload.name).wait_for(timeout=args.update_timeout * 1000)
            except Exception:
                stats.upload_failures.append(f"session {self.sid}: upload not confirmed")
            # a valid upload is selected at once (issue 16): the charts now carry its model key
            self.model_key = "upload:" + hashlib.sha256(upload.read_bytes()).hexdigest()[:16]

    async def commit_text(self, n: int) -> tuple[float, str, str | None, str | None]:
        """Type a new text holding this session's token and commit it (Ctrl+Enter)."""
        self.text = new_text(self.rng, self.token, n, self.args.text_chars)
        await self.area.fill(self.text)
        await arm(self.page)
        t0 = time.monotonic()
        await self.area.press("Control+Enter")
        return t0, "text", self.text, None

    async def switch_view(self) -> tuple[float, str, str | None, str | None] | None:
        """Click another view's sidebar link; None (a timeout noted) if the click failed."""
        page = self.page
        links = page.locator("[data-testid='stSidebarNav'] a")
        # another view than the one shown (clicking the current one need not redraw anything)
        others = await page.evaluate("""() => [...document.querySelectorAll(
            "[data-testid='stSidebarNav'] a")].map(a => new URL(a.href).pathname)""")
        here = (await page.evaluate("() => location.pathname")).rstrip("/")
        choices = [i for i, p in enumerate(others) if p.rstrip("/") != here] or [0]
        k = self.rng.choice(choices)
        await page.evaluate(MARK_OLD_JS)
        await arm(page)
        t0 = time.monotonic()
        view_path = others[k] if others else None
        try:
            await links.nth(k).click(timeout=self.args.update_timeout * 1000)
        except Exception as err:
            self.stats.timeouts.append(f"session {self.sid}: could not click view link {k}: {str(err)[:120]}")
            return None
        return t0, "view", None, view_path

    async def finish_action(self, step: tuple, n: int, clock: Clock) -> None:
        """Wait until the page shows the update, record its latency, check the page for errors
        and other sessions' tokens."""
        t0, kind, param, view_path = step
        args, stats = self.args, self.stats
        try:
            await wait_update(self.page, self.digest(), param, args.update_timeout, view_path, armed=True)
            dt = time.monotonic() - t0
            (stats.text_latency if kind == "text" else stats.view_latency).append(dt)
            stats.updates.append((round(t0 - (clock.deadline - clock.duration), 2), self.sid, kind, round(dt, 3)))
            if kind == "text":
                stats.texts.add(self.text)
        except Exception:
            seen = await self.page.evaluate(STATE_JS)
            stats.timeouts.append(f"session {self.sid} {kind} update > {args.update_timeout:.0f} s "
                                  f"(to {view_path or param!r:.60}; page: {seen})")
        stats.actions += 1
        await check_page(self.page, self.sid, self.tokens, stats, f"after {kind} #{n}")
        await note_cookie(self.ctx, self.sid, args.cookie, stats)

    async def check_uploads(self, upload: Path | None) -> None:
        """Isolation of uploads: this session's checkpoint list holds only its own upload (if any)."""
        stats, sid = self.stats, self.sid
        try:
            names = await read_checkpoint_options(self.page)
            for name in names:
                if "(uploaded)" in name and (upload is None or upload.name not in name):
                    stats.upload_leaks.append(f"session {sid} lists {name!r}")
            if upload is not None and not any(upload.name in nm for nm in names):
                stats.upload_failures.append(f"session {sid}: own upload missing from its list")
        except Exception as err:
            stats.upload_failures.append(f"session {sid}: could not read checkpoint list: {err}")



async def start_together(clock: Clock, args, rng: random.Random) -> None:
    """Report ready, wait for the load clock, then (``args.stagger``) a random phase within one
    think interval, so 20 sessions do not all act in the same instant when the load period starts
    (that burst is what --no-stagger measures); with ``args.burst``, this session's moment in the
    first round."""
    clock.ready()
    await clock.go.wait()
    if args.burst:
        await asyncio.sleep(rng.uniform(0, args.burst[1]))
    elif args.stagger:
        await asyncio.sleep(rng.uniform(0, args.think[1]))


def next_round_at(started: float, period: float, acted_at: float, now: float) -> float:
    """``--burst``: when the round after the one a session acted in (at ``acted_at``) starts;
    rounds start every ``period`` s from ``started``. A round that began while the session's update
    was still running (before ``now``) is missed: the next one after ``now`` is taken instead."""
    k = math.floor((acted_at - started) / period) + 1
    return started + max(k, math.ceil((now - started) / period)) * period


async def pause(clock: Clock, args, rng: random.Random, acted_at: float) -> None:
    """After an action: a think pause (uniform in ``args.think``), or with ``args.burst`` (PERIOD,
    SPREAD) until this session's moment in the next round — every session acts once per round, at a
    random moment within SPREAD s of its start (a class told "now type your name")."""
    if not args.burst:
        await asyncio.sleep(rng.uniform(*args.think))
        return
    period, spread = args.burst
    now = time.monotonic()
    at = next_round_at(clock.started, period, acted_at, now) + rng.uniform(0, spread)
    await asyncio.sleep(max(0.0, at - now))

async def session(sid: int, browser, url: str, model_key: str, tokens: list[str], views: list[str],
                  upload: Path | None, clock: Clock, args, stats: Stats, max_chars: int) -> None:
    """One browser context until the deadline: 65 % text commits, 35 % view switches, a think
    pause after each; then the upload-isolation check."""
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    page.on("console", lambda m: stats.console_errors.append(f"session {sid}: {m.text[:200]}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: stats.page_errors.append(f"session {sid}: {str(e)[:200]}"))
    run = SessionRun(sid, ctx, page, model_key, tokens, args, stats, max_chars)
    try:
        await run.setup(url, upload)
        await start_together(clock, args, run.rng)
        n = 0
        while time.monotonic() < clock.deadline:
            n += 1
            acted_at = time.monotonic()
            if run.rng.random() < 0.65:
                step = await run.commit_text(n)
            else:
                step = await run.switch_view()
            if step is None:
                continue
            await run.finish_action(step, n, clock)
            await pause(clock, args, run.rng, acted_at)
        await run.check_uploads(upload)
    finally:
        await ctx.close()


def make_uploads(n: int, out_dir: Path, base: str, checkpoint_dir: Path | None = None) -> list[Path]:
    """Valid checkpoints (distinct bytes) named after their uploader's token, shaped like checkpoint
    ``base`` of ``checkpoint_dir`` (default: the shipped ones) when it exists."""
    sys.path.insert(0, str(REPO))
    import rnnviz
    from rnnviz.checkpoint import CHECKPOINT_DIR

    paths = []
    folder = Path(checkpoint_dir or CHECKPOINT_DIR)
    src = rnnviz.load_model(base, folder) if (folder / f"{base}.safetensors").is_file() else None
    for i in range(n):
        cfg = src.config if src is not None else rnnviz.ModelConfig(
            "gru", 16, 1, tuple(rnnviz.Vocab.from_text(" ".join(WORDS)).tokens))
        model = rnnviz.build_model(cfg, seed=1000 + i)
        path = out_dir / f"upload-{token_for(i)}.safetensors"
        rnnviz.save_checkpoint(model, path, {"corpus": f"loadtest upload {i}"})
        paths.append(path)
    return paths



async def run_clocked(args, stats: Stats, start) -> None:
    """Start ``args.sessions`` coroutines ``start(i, clock)`` over ``args.ramp`` s, run the load
    clock (every session connected, or 180 s), wait for them all; record the load period, the CPU
    by program and any session that crashed into ``stats``."""
    clock = Clock(args.sessions, args.duration)
    tasks = []
    for i in range(args.sessions):
        tasks.append(asyncio.create_task(start(i, clock)))
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
    stats.own_programs = programs_of_tree(os.getpid())
    for i, res in enumerate(done):
        if isinstance(res, BaseException):
            stats.timeouts.append(f"session {i} crashed: {type(res).__name__}: {str(res)[:200]}")


def niced(exe: str, nice: int) -> str:
    """A launcher (a temporary shell script) that runs ``exe`` at CPU priority ``nice``: the
    browsers get what the servers leave, as they would on the students' own machines.

    Playwright starts the browser in a session of its own (``setsid``), and with the kernel's
    autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) a session is a group that
    gets a fair share of the CPUs whatever its processes' nice values: ``nice -n 19`` alone left the
    browsers one of two cores (and Chromium, run as root, sets some of its threads' nice back to 0
    or below). So the launcher also sets its group's nice (``/proc/self/autogroup``, where the
    kernel has it)."""
    wrapper = Path(tempfile.mkdtemp(prefix="rnnviz-nice-")) / Path(exe).name
    wrapper.write_text(f'#!/bin/sh\n(echo {int(nice)} > /proc/self/autogroup) 2>/dev/null\n'
                       f'exec nice -n {int(nice)} "{exe}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


async def run_sessions(server, args, model_keys: list[str], views: list[str],
                       uploads: list[Path], max_chars: int) -> Stats:
    """``args.sessions`` sessions against ``server.url`` (tools/loadtest.py's Server or
    ExternalServer), started over ``args.ramp`` s in one Chromium; their counters once all end."""
    from playwright.async_api import async_playwright

    stats = Stats()
    tokens = [token_for(i) for i in range(args.sessions)]
    exe = niced(CHROMIUM, args.browser_nice) if args.browser_nice else CHROMIUM
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            def start(i: int, clock: Clock):
                up = uploads[i] if i < len(uploads) else None
                return session(i, browser, server.url, model_keys[i % len(model_keys)], tokens,
                               views, up, clock, args, stats, max_chars)
            await run_clocked(args, stats, start)
        finally:
            await browser.close()
    return stats
