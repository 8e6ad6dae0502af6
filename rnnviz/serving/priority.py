"""A thread pool whose queue is ordered by a priority (lowest first), ties first come first served.

    pool = PriorityPool(workers=1, name="rnnviz-heavy")
    future = pool.submit(time.monotonic() + 4 * estimate, fn, *args)    # a "virtual deadline"

The heavy lane (rnnviz.serving.lanes) orders its work by virtual deadline, the time of the request
plus a multiple of its estimated seconds: a short request goes before long ones that came a little
earlier, and a long one still runs once it has waited long enough (no one is starved).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future
from typing import Any, Callable


class PriorityPool:
    """``workers`` threads (started on first use, each running ``initializer()`` first) taking
    the queued call with the lowest priority first. A cancelled future's call never starts."""

    def __init__(self, workers: int = 1, *, name: str = "pool",
                 initializer: Callable[[], Any] | None = None):
        self.workers, self.name, self.initializer = max(1, int(workers)), name, initializer
        self._heap: list[tuple[float, int, Future, Callable[..., Any], tuple, dict]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []

    def submit(self, priority: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._cond:
            heapq.heappush(self._heap, (priority, next(self._order), future, fn, args, kwargs))
            if len(self._threads) < self.workers:
                t = threading.Thread(target=self._worker, daemon=True,
                                     name=f"{self.name}_{len(self._threads)}")
                self._threads.append(t)
                t.start()
            self._cond.notify()
        return future

    def qsize(self) -> int:
        """Calls queued, not yet started."""
        with self._cond:
            return len(self._heap)

    def position(self, future: Future) -> int | None:
        """How many queued calls start before ``future``'s (0: it is next), or None when it is not
        queued (running, done, cancelled, or not from this pool)."""
        with self._cond:
            mine = next(((p, n) for p, n, f, *_ in self._heap if f is future), None)
            if mine is None:
                return None
            return sum(1 for p, n, *_ in self._heap if (p, n) < mine)

    def promote(self, future: Future, priority: float) -> bool:
        """Give ``future``'s queued call ``priority`` if that is sooner (a warm-up a user now waits
        for); True when it was queued and moved."""
        with self._cond:
            for i, (p, n, f, fn, args, kwargs) in enumerate(self._heap):
                if f is future:
                    if priority < p:
                        self._heap[i] = (priority, n, f, fn, args, kwargs)
                        heapq.heapify(self._heap)
                        return True
                    return False
        return False

    def _worker(self) -> None:
        if self.initializer is not None:
            self.initializer()
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                _, _, future, fn, args, kwargs = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:        # noqa: BLE001 — handed to the caller unchanged
                future.set_exception(err)
            else:
                future.set_result(result)
