"""Load-test sessions without browsers (``tools/loadtest.py --client protocol``).

The same schedule as the browser sessions of tools/load_session.py (65 % text commits, 35 % view
switches, a think pause after each, the same seeded random stream per session, the same texts and
tokens), but each session is a :class:`tools.st_protocol.ProtocolSession`: Streamlit's websocket
protocol, nothing rendered. The latency of an update is then the server's side of it: from the
request to the end of its script run, every element received. What a renderer adds is measured by
the page benchmark (tools/bench_page.py), per view, on one quiet session.

Checks per update: the run finished (not stopped, no compile error), no exception element, every
chart of the run carries the digest of the session's model and text (the charts are of *this*
text), and no other session's token in anything the run sent (isolation). Uploads are not
exercised here (the browser load test does that): ``--uploaders`` is ignored.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from tools.load_session import (Clock, Stats, digest, new_text, pause, run_clocked,
                                 start_together, token_for)
from tools.st_protocol import FINISHED_OK, ProtocolSession, Run


def first_cookies(url: str, name: str | None) -> dict[str, str]:
    """The page's first HTTP load, as a browser's: the cookies the server (or the balancer in front,
    e.g. its affinity cookie ``name``) sets on it."""
    with urllib.request.urlopen(url.rstrip("/") + "/", timeout=60) as r:
        jar = SimpleCookie()
        for header in r.headers.get_all("Set-Cookie") or []:
            jar.load(header)
    return {k: m.value for k, m in jar.items() if name is None or k == name}


class ProtocolRun:
    """One protocol session's state: model, text, page shown, and its seeded random stream."""

    def __init__(self, sid: int, url: str, model_key: str, tokens: list[str], views: list[str],
                 args, stats: Stats, max_chars: int):
        self.sid, self.url, self.model_key, self.tokens = sid, url, model_key, tokens
        self.views, self.args, self.stats, self.max_chars = views, args, stats, max_chars
        self.rng = random.Random(sid)
        self.token = tokens[sid]
        self.text = self.token
        self.view = ""                       # the default page
        self.session: ProtocolSession | None = None
        self.text_area: str | None = None

    async def setup(self) -> None:
        cookies = first_cookies(self.url, self.args.cookie)
        if self.args.cookie and self.args.cookie in cookies:
            self.stats.cookies.setdefault(self.sid, set()).add(cookies[self.args.cookie])
        self.session = ProtocolSession(self.url, cookies, timeout=self.args.update_timeout)
        await self.session.connect()
        query = urlencode({"ckpt": self.model_key, "text": self.token})
        run = await self.session.run(query=query)
        self.text_area = run.widget_id("text_area")
        if self.text_area is None:
            raise RuntimeError(f"session {self.sid}: the first page has no text area")
        self.check(run, "first page")
        if self.args.stay:                   # --stay: this view for the whole run
            self.view = self.args.stay
            self.check(await self.session.run(page=self.view), f"opening {self.view}")

    async def act(self, n: int) -> tuple[str, Run]:
        """One action: commit a new text holding this session's token, or show another view."""
        rng = self.rng
        if self.args.stay or rng.random() < 0.65:
            self.text = new_text(rng, self.token, n, self.args.text_chars)
            return "text", await self.session.run(widgets={self.text_area: self.text})
        others = [v for v in ["", *self.views] if v != self.view]
        self.view = rng.choice(others)
        return "view", await self.session.run(page=self.view)

    def check(self, run: Run, what: str) -> None:
        """The run finished, without exceptions, showing this session's text and nobody else's."""
        stats, sid = self.stats, self.sid
        if run.status != FINISHED_OK:
            stats.timeouts.append(f"session {sid} {what}: the run ended with status {run.status}")
        for e in run.exceptions:
            stats.exceptions.append(f"session {sid} {what}: {e}")
        mark = digest(self.model_key, self.text, self.max_chars).encode()
        charts = [p for p in run.payloads() if b'"rnnviz"' in p]
        stale = [p for p in charts if mark not in p]
        if stale:
            stats.stale_charts.append(f"session {sid} {what}: {len(stale)} of {len(charts)} charts "
                                      "not of this session's text")
        sent = b"".join(el.SerializeToString() for _, el in run.elements)
        for j, tok in enumerate(self.tokens):
            if j != sid and tok.encode() in sent:
                stats.leaks.append(f"session {sid} saw token of session {j} ({what})")


async def session(run: ProtocolRun, clock: Clock) -> None:
    """Until the deadline: act, check, think (the browser sessions' schedule)."""
    stats, args = run.stats, run.args
    try:
        await run.setup()
        await start_together(clock, args, run.rng)
        n = 0
        while time.monotonic() < clock.deadline:
            n += 1
            t0 = time.monotonic()
            try:
                kind, result = await run.act(n)
            except (asyncio.TimeoutError, TimeoutError):
                stats.timeouts.append(f"session {run.sid}: update #{n} > {args.update_timeout:.0f} s")
                break               # the connection is mid-run: this session stops here
            (stats.text_latency if kind == "text" else stats.view_latency).append(result.seconds)
            stats.updates.append((round(t0 - (clock.deadline - clock.duration), 2), run.sid, kind,
                                  round(result.seconds, 3)))
            if kind == "text":
                stats.texts.add(run.text)
            stats.actions += 1
            if result.status == FINISHED_OK:
                view = run.view or "hidden-states"
                stats.runs_by_view[view] = stats.runs_by_view.get(view, 0) + 1
            run.check(result, f"after {kind} #{n}")
            await pause(clock, args, run.rng, t0)
    finally:
        if run.session is not None:
            await run.session.close()


async def run_sessions(server, args, model_keys: list[str], views: list[str], uploads: list,
                       max_chars: int) -> Stats:
    """``args.sessions`` protocol sessions against ``server.url``, started over ``args.ramp`` s;
    their counters once all end (the signature of tools.load_session.run_sessions)."""
    stats = Stats()
    tokens = [token_for(i) for i in range(args.sessions)]

    def start(i: int, clock):
        return session(ProtocolRun(i, server.url, model_keys[i % len(model_keys)], tokens, views,
                                   args, stats, max_chars), clock)
    await run_clocked(args, stats, start)
    return stats
