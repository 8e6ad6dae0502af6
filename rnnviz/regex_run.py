"""The server-wide bound on user regex workers, and the memory of patterns that failed.

Each user pattern runs in its own short-lived, isolated Python process (see :mod:`rnnviz.features`).
Here: at most :data:`REGEX_WORKERS` such processes run at once in this server process, later ones
wait their turn (first come, first served; the wait also stops at the request's deadline, see
:func:`rnnviz.serving.deadline.check`), and :func:`queue` tells a page how many run and wait. A
pattern that failed on a text (too slow, crashed) is remembered for that text
(:data:`FAILED_MEMORY` of them, least recently used forgotten first) and not run again: the same
refusal comes back at once.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections import OrderedDict, deque

from .serving.deadline import check

#: Matcher processes running at once, server-wide.
REGEX_WORKERS = 2
#: (pattern, flags, text) failures remembered.
FAILED_MEMORY = 512

#: The matcher run in a child process: reads {"p": pattern, "f": flags, "t": text} as JSON on stdin,
#: writes the flat list [start0, end0, start1, end1, …] of non-empty matches as JSON on stdout.
_WORKER = ("import json,re,sys\n"
           "d=json.load(sys.stdin)\n"
           "rx=re.compile(d['p'],d['f'])\n"
           "out=[]\n"
           "for m in rx.finditer(d['t']):\n"
           "    if m.end()>m.start(): out+=m.span()\n"
           "sys.stdout.write(json.dumps(out))\n")


class RegexFailed(Exception):
    """The pattern failed (``str``: the message for the user); remembered for this text."""


class _Workers:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.running = 0
        self.waiting: deque[object] = deque()
        self.failed: OrderedDict[tuple, str] = OrderedDict()

    def acquire(self) -> None:
        """Wait (FIFO) for a free worker; the request's deadline stops the wait."""
        ticket = object()
        with self.lock:
            self.waiting.append(ticket)
            try:
                while self.running >= REGEX_WORKERS or self.waiting[0] is not ticket:
                    self.lock.wait(0.1)
                    check()
            finally:
                self.waiting.remove(ticket)
                self.lock.notify_all()
            self.running += 1

    def release(self) -> None:
        with self.lock:
            self.running -= 1
            self.lock.notify_all()


_WORKERS = _Workers()


def queue() -> tuple[int, int]:
    """(running, waiting) matcher processes of this server now."""
    with _WORKERS.lock:
        return _WORKERS.running, len(_WORKERS.waiting)


def _key(pattern: str, flags: int, text: str) -> tuple:
    return pattern, flags, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _remember(key: tuple, message: str) -> None:
    with _WORKERS.lock:
        _WORKERS.failed[key] = message
        while len(_WORKERS.failed) > FAILED_MEMORY:
            _WORKERS.failed.popitem(last=False)


def run_matcher(pattern: str, flags: int, text: str, timeout_s: float) -> list[int]:
    """The flat match spans of ``pattern`` in ``text`` from a child process killed after
    ``timeout_s``. Raises RegexFailed (remembered: the same pattern on the same text fails again at
    once, without a process)."""
    key = _key(pattern, flags, text)
    with _WORKERS.lock:
        known = _WORKERS.failed.get(key)
        if known is not None:
            _WORKERS.failed.move_to_end(key)
    if known is not None:
        raise RegexFailed(known + " (This pattern already failed on this text, so it was not run again.)")
    payload = json.dumps({"p": pattern, "f": flags, "t": text})
    _WORKERS.acquire()
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _WORKER], input=payload,
                              capture_output=True, text=True, encoding="utf-8",
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        message = (f"The pattern took longer than {timeout_s:g} s on {len(text):,} characters "
                   "(catastrophic backtracking?) and was stopped; simplify it, e.g. avoid "
                   "nested or chained .* / + repeats.")
        _remember(key, message)
        raise RegexFailed(message) from None
    except OSError as err:
        raise RegexFailed(f"The pattern could not be run: {err}") from None
    finally:
        _WORKERS.release()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        _remember(key, f"The pattern failed: {last[:200]}")
        raise RegexFailed(f"The pattern failed: {last[:200]}")
    try:
        return [int(v) for v in json.loads(done.stdout)]
    except (json.JSONDecodeError, TypeError, ValueError):
        raise RegexFailed("The pattern produced an unreadable result.") from None
