"""Two lanes for a server's computations, so that cheap work never queues behind heavy work.

* The **quick lane** (``quick_workers`` threads, the server's normal priority) runs a request first
  when its estimate is at most ``quick_seconds`` or unknown, under a CPU-time cap of
  ``quick_cpu_s``. Its queue is ordered by virtual deadline too, an unpriced request counted at
  the cap: py-spy dumps of the soak's server found the ordinary sessions' script threads waiting
  here, an ordinary text's trace (milliseconds) queued first come first served behind
  generations and Jacobian chains of up to 0.5 CPU-s each. A request that passes the cap (its estimate was wrong) is stopped there and
  run again from the start in the heavy lane; one that needs a value another thread is computing
  (a shared cache's key in flight, :func:`rnnviz.serving.deadline.wait_for`) gives its worker back,
  and its caller waits for that value, then asks again: a quick worker is never held longer than
  the cap, nor by a wait.
* The **heavy lane** (``heavy_workers`` threads, one by default so a core is left for everyone
  else) runs the rest at a lower CPU priority (:func:`lower_priority`): on a busy machine the
  operating system gives the cores to the quick lane and the script threads first. Its queue is
  ordered by virtual deadline, the request's time plus ``slack`` × its estimate
  (:class:`rnnviz.serving.priority.PriorityPool`): a student's 1 s gradient map goes before a
  hostile 8 s one that came a moment earlier, and a long request still runs once it has waited
  ``slack`` times its own length.

Both lanes run a request under its own deadline (:mod:`rnnviz.serving.deadline`), and the caller
waits at most WALL_FACTOR × its budget in all (+1 s), else Overtime(wall=True).

    lanes = Lanes()
    lanes.run(fn, 8.0, (model, text), {}, estimate=0.05)    # → the quick lane
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from .deadline import WALL_FACTOR, MustWait, Overtime, deadline, no_waiting
from .priority import PriorityPool

log = logging.getLogger(__name__)

#: Requests estimated at most this many seconds start in the quick lane.
QUICK_SECONDS = 0.5
#: CPU seconds a request may use in the quick lane before it moves to the heavy lane.
QUICK_CPU_S = 0.5
#: How much the heavy lane's and training's threads are niced (Linux: per thread).
HEAVY_NICE = 10
#: A heavy request's virtual deadline: its time + this × its estimated seconds.
SLACK = 4.0
#: Added to the virtual deadline of work queued for when the lane is idle (a start-up warm-up).
IDLE_AFTER = 1e6


def lower_priority(by: int = HEAVY_NICE) -> bool:
    """Lower the calling thread's CPU priority by ``by`` nice steps (Linux, where nice is per
    thread; elsewhere it would nice the whole server, so nothing is done). True when lowered."""
    if not sys.platform.startswith("linux") or by <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError:                    # not permitted in this sandbox: run at the usual priority
        log.debug("could not lower the priority of thread %s", tid, exc_info=True)
        return False
    return True


class _Demoted(Exception):
    """A quick-lane request passed the lane's CPU cap: run it again in the heavy lane."""


def _quick_job(fn: Callable[..., Any], cap: float, seconds: float, args: tuple, kwargs: dict) -> Any:
    try:
        with deadline(cap, wall_factor=WALL_FACTOR * seconds / cap), no_waiting():
            return fn(*args, **kwargs)
    except Overtime as err:
        if not err.wall and cap < seconds:
            raise _Demoted() from None
        if err.wall:                      # the request's own wall-clock cap: said in its terms
            raise Overtime(seconds, wall=True) from None
        raise


def _heavy_job(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    with deadline(seconds):
        return fn(*args, **kwargs)


class Lanes:
    """The quick and the heavy lane of one server (see the module docstring)."""

    def __init__(self, quick_workers: int = 2, heavy_workers: int = 1, *,
                 quick_seconds: float = QUICK_SECONDS, quick_cpu_s: float = QUICK_CPU_S,
                 heavy_nice: int = HEAVY_NICE, slack: float = SLACK, name: str = "rnnviz"):
        self.quick_seconds, self.quick_cpu_s, self.slack = quick_seconds, quick_cpu_s, slack
        self.quick = PriorityPool(quick_workers, name=f"{name}-quick")
        self.heavy = PriorityPool(heavy_workers, name=f"{name}-heavy",
                                  initializer=lambda: lower_priority(heavy_nice))
        self.demoted = 0                  # requests moved from the quick to the heavy lane
        self.waits = 0                    # quick requests that gave their worker back to wait

    def lane(self, estimate: float | None) -> str:
        """"quick" or "heavy": where a request of this estimate (None: unknown) starts."""
        return "quick" if estimate is None or estimate <= self.quick_seconds else "heavy"

    def run(self, fn: Callable[..., Any], seconds: float, args: tuple = (), kwargs: dict | None = None,
            *, estimate: float | None = None) -> Any:
        """``fn(*args, **kwargs)`` in its lane under a ``seconds`` deadline; its result, or its
        exception (Overtime past the deadline or the wall-clock wait)."""
        kwargs = kwargs or {}
        until = time.monotonic() + WALL_FACTOR * seconds + 1.0
        cap = min(seconds, self.quick_cpu_s)
        while self.lane(estimate) == "quick":
            try:
                return _wait(self.quick.submit(self.quick_deadline(estimate), _quick_job, fn, cap, seconds,
                                               args, kwargs), until, seconds)
            except _Demoted:
                self.demoted += 1
                break
            except MustWait as need:         # another thread computes what it needs: wait here
                self.waits += 1
                if not need.event.wait(max(until - time.monotonic(), 0.0)):
                    raise Overtime(seconds, wall=True) from None
        return _wait(self.submit_heavy(fn, seconds, args, kwargs, estimate=estimate), until, seconds)

    def submit_heavy(self, fn: Callable[..., Any], seconds: float, args: tuple = (),
                     kwargs: dict | None = None, *, estimate: float | None = None, idle: bool = False) -> Future:
        """Queue ``fn(*args, **kwargs)`` in the heavy lane under a ``seconds`` deadline (from when
        it starts) and return at once: its future (``self.heavy.position(future)``: its place in
        the queue). For work nobody waits on in a script run (rnnviz.serving.background).
        ``idle``: after every request that is not (a warm-up: it runs when the lane is idle)."""
        late = IDLE_AFTER if idle else 0.0
        return self.heavy.submit(self.virtual_deadline(estimate) + late, _heavy_job, fn, seconds, args, kwargs or {})

    def quick_deadline(self, estimate: float | None) -> float:
        """A quick request's place in the quick lane's queue: its time + slack × its estimate
        (unpriced: the lane's CPU cap, the most it may take there)."""
        return time.monotonic() + self.slack * (self.quick_cpu_s if estimate is None else max(estimate, 0.0))

    def virtual_deadline(self, estimate: float | None) -> float:
        """A heavy request's place in the queue if asked now: its time + slack × its estimate."""
        return time.monotonic() + self.slack * max(estimate or 0.0, self.quick_cpu_s)   # unpriced: the quick cap


def _wait(future: Future, until: float, seconds: float) -> Any:
    try:
        return future.result(timeout=max(until - time.monotonic(), 0.0))
    except FutureTimeout:
        future.cancel()                 # still queued: never starts; running: stops at its next check
        raise Overtime(seconds, wall=True) from None
