"""Heavy results that a script run starts and a later run shows: nobody waits for them.

A view whose own work takes seconds (the Units verdict panel's scorecard, the Gradients Jacobian
chain of a long text) asks :meth:`Background.poll` instead of computing: the first ask queues the
work in the heavy lane (:meth:`rnnviz.serving.lanes.Lanes.submit_heavy`: niced, ordered by virtual
deadline, under the operation's deadline) and returns :class:`Pending` at once, with the request's
place in the queue and how long it is expected to take; later asks (the page polls) return
Pending again, then :class:`Ready` with the value, or :class:`Failed` with the error. Results go
into the byte-bounded store that the blocking calls share (:class:`rnnviz.serving.cache.ByteLRU`,
same keys), so a blocking caller of the same key waits for the background computation instead of
repeating it, and the next visitor reads it at once.

    bg = Background(lanes, store)
    state = bg.poll(key, fn, 80.0, (model, text), estimate=2.5, kind=("scorecard", "lstm"))
    if isinstance(state, Ready): draw(state.value)

Bounded: at most ``max_jobs`` computations are queued or running here (more asks get Pending with
no place, and are queued when a slot frees); a failure is remembered ``keep_s`` seconds (every poll
in that time shows it), then the next ask tries again; a queued computation that nobody asked about
for ``abandon_s`` seconds (the user left) is dropped when its turn comes. Errors are logged: the
``expected`` ones (refusals, time budgets) as one line, others with their traceback.
No Streamlit here: the views' placeholder and polling are app_pages/ui/later.py.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from .cache import ByteLRU
from .lanes import Lanes

log = logging.getLogger(__name__)

#: Background computations queued or running at once, server-wide.
MAX_JOBS = 16
#: Kinds of computation whose last measured time is kept (the oldest forgotten first).
MAX_KINDS = 256
#: Seconds a failure is shown to whoever asks, before the next ask computes again.
KEEP_S = 30.0
#: A queued computation nobody asked about for this many seconds is dropped when its turn comes.
ABANDON_S = 60.0


@dataclass(frozen=True)
class Ready:
    value: Any


@dataclass(frozen=True)
class Failed:
    error: BaseException


@dataclass(frozen=True)
class Pending:
    """Not ready yet. position: heavy-lane requests that start before this one (None: running, or
    not queued yet); running_s: seconds it has run (0 while queued); estimate: seconds it is
    expected to run (the caller's estimate, else the last run of the same kind; None: unknown)."""
    position: int | None
    running_s: float
    estimate: float | None


class Abandoned(Exception):
    """Nobody asked for this result for ABANDON_S seconds before its turn: not computed."""


class _Job:
    __slots__ = ("future", "started", "finished", "error", "value", "seen", "estimate", "kind")

    def __init__(self, now: float, estimate: float | None, kind: Hashable):
        self.future: Future | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.error: BaseException | None = None
        self.value: Any = None
        self.seen, self.estimate, self.kind = now, estimate, kind


class Background:
    """Heavy computations polled for, not waited on (see the module docstring)."""

    def __init__(self, lanes: Lanes, store: ByteLRU, *, max_jobs: int = MAX_JOBS, keep_s: float = KEEP_S,
                 abandon_s: float = ABANDON_S, clock: Callable[[], float] = time.monotonic):
        self.lanes, self.store = lanes, store
        self.max_jobs, self.keep_s, self.abandon_s, self._clock = max_jobs, keep_s, abandon_s, clock
        self._jobs: dict[Hashable, _Job] = {}
        self._measured: dict[Hashable, float] = {}      # kind → seconds its last run took
        self._lock = threading.Lock()

    def poll(self, key: Hashable, fn: Callable[..., Any], seconds: float, args: tuple = (),
             kwargs: dict | None = None, *, estimate: float | None = None, kind: Hashable = None,
             expected: tuple[type[BaseException], ...] = (), keep: bool = False) -> Ready | Pending | Failed:
        """The state of ``fn(*args, **kwargs)`` kept under ``key``: Ready, Failed, or Pending (then
        it is queued, if it was not). ``seconds``: its deadline once it starts; ``estimate``: its
        expected seconds (orders the heavy lane); ``kind``: runs of one kind share a measured
        duration (shown when there is no estimate); ``expected``: errors logged without a
        traceback; ``keep``: a warm-up nobody polls: never abandoned, and queued after every other
        heavy request (it runs when the lane is idle, or sooner once a user asks for it)."""
        found, value = self.store.peek(key)
        if found:
            return Ready(value)
        now = self._clock()
        with self._lock:
            self._forget(now)
            job = self._jobs.get(key)
            if job is not None:
                if not keep and job.seen == float("inf") and job.future is not None:
                    # a warm-up a user now waits for: its place as if this user had asked for it
                    self.lanes.heavy.promote(job.future, self.lanes.virtual_deadline(
                        estimate if estimate is not None else self._measured.get(kind)))
                job.seen = max(job.seen, float("inf") if keep else now)
                return self._state(job, now)
            running = sum(1 for j in self._jobs.values() if j.finished is None)     # finished: kept, not counted
            if running >= self.max_jobs or not self.store.claim(key):
                # full, or a blocking caller computes it now: ask again later
                return Pending(None, 0.0, estimate if estimate is not None else self._measured.get(kind))
            job = self._jobs[key] = _Job(float("inf") if keep else now, estimate, kind)
        size = estimate if estimate is not None else self._measured.get(kind)
        job.future = self.lanes.submit_heavy(self._run, seconds, (key, job, fn, args, kwargs or {}),
                                             estimate=size, idle=keep)
        job.future.add_done_callback(lambda f: self._done(key, job, f, expected))
        return self._state(job, now)

    def _state(self, job: _Job, now: float) -> Ready | Pending | Failed:
        if job.finished is not None:
            return Failed(job.error) if job.error is not None else Ready(job.value)
        estimate = job.estimate if job.estimate is not None else self._measured.get(job.kind)
        if job.started is not None:
            return Pending(None, now - job.started, estimate)
        where = self.lanes.heavy.position(job.future) if job.future is not None else None
        return Pending(where, 0.0, estimate)

    def _forget(self, now: float) -> None:
        """Drop finished jobs older than keep_s (their values are in the store, if they fit)."""
        for key in [k for k, j in self._jobs.items() if j.finished is not None and now - j.finished > self.keep_s]:
            del self._jobs[key]

    def _run(self, key: Hashable, job: _Job, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if self._clock() - job.seen > self.abandon_s:
            raise Abandoned(f"nobody asked for it for {self.abandon_s:g} s")
        job.started = self._clock()
        value = fn(*args, **kwargs)
        with self._lock:
            self._measured.pop(job.kind, None)
            self._measured[job.kind] = self._clock() - job.started
            while len(self._measured) > MAX_KINDS:         # the oldest measurement goes first
                del self._measured[next(iter(self._measured))]
        return value

    def _done(self, key: Hashable, job: _Job, future: Future, expected: tuple) -> None:
        err = future.exception() if not future.cancelled() else Abandoned("cancelled")
        if err is None:
            job.value = future.result()
            self.store.fulfil(key, job.value)
        else:
            self.store.release(key)
            job.error = err
            if isinstance(err, Abandoned):
                log.info("background computation %s dropped: %s", _name(key), err)
            elif isinstance(err, expected):
                log.warning("background computation %s stopped: %s", _name(key), err)
            else:
                log.error("background computation %s failed", _name(key), exc_info=err)
        with self._lock:
            job.finished = self._clock()
            if isinstance(err, Abandoned):
                self._jobs.pop(key, None)


def _name(key: Hashable) -> str:
    """A short name of a result's key for the log: (module, function, …) → module.function."""
    if isinstance(key, tuple) and len(key) >= 2 and all(isinstance(k, str) for k in key[:2]):
        return f"{key[0]}.{key[1]}"
    return repr(key)[:80]
