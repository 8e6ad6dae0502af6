"""Cheap requests never queue behind heavy work (issue 27: the soak's ordinary p95).

- With the heavy lane saturated, a cheap request still runs at once in the quick lane.
- A request priced over the quick lane's limit goes straight to the heavy lane; one not priced
  starts in the quick lane and, past the lane's CPU cap, is run again in the heavy lane.
- A request whose own budget ends in the quick lane is stopped, not moved.
- A quick request that needs a value another thread is computing gives its worker back and waits
  in its caller: it does not hold the quick lane (the Units index being built, say).
- The heavy lane takes a short request before long ones queued a moment earlier; so does the quick
  lane (an ordinary text's trace before an unpriced generation).
- The heavy lane's threads and the training workers run at a lower CPU priority than the rest.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from rnnviz.serving.cache import ByteLRU
from rnnviz.serving.deadline import Overtime, check
from rnnviz.serving.lanes import Lanes
from rnnviz.training.pool import TrainingPool
from rnnviz.training.trainer import Trainer

from .test_training_pool import TEXT, cfg, wait


def _spin(cpu_s: float, seen: list[str]) -> str:
    """Use ``cpu_s`` of this thread's CPU time, checking the deadline; record the thread's name."""
    seen.append(threading.current_thread().name)
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        check()
    return threading.current_thread().name


def test_a_cheap_request_runs_while_the_heavy_lane_is_busy():
    lanes = Lanes(quick_workers=1, heavy_workers=1)
    release, order = threading.Event(), []

    def blocker(tag: str) -> str:
        release.wait(30)
        order.append(tag)
        return tag

    heavy = [threading.Thread(target=lanes.run, args=(blocker, 60.0, (f"heavy{i}",)),
                              kwargs={"estimate": 50.0}) for i in range(3)]
    for t in heavy:                      # one runs, two wait in the heavy lane's queue
        t.start()
    wait(lambda: lanes.heavy.qsize() == 2, 10)
    name = lanes.run(lambda: (order.append("cheap"), threading.current_thread().name)[1], 8.0,
                     estimate=0.01)
    assert order == ["cheap"] and "quick" in name          # done before any heavy one
    release.set()
    for t in heavy:
        t.join(30)
    assert order[0] == "cheap" and sorted(order[1:]) == ["heavy0", "heavy1", "heavy2"]


def test_lanes_by_estimate_and_an_unpriced_overrun_moves_to_the_heavy_lane():
    lanes = Lanes(quick_cpu_s=0.05)
    seen: list[str] = []
    assert "heavy" in lanes.run(_spin, 5.0, (0.01, seen), estimate=lanes.quick_seconds * 10)
    assert "quick" in lanes.run(_spin, 5.0, (0.01, seen), estimate=None)
    seen.clear()
    assert "heavy" in lanes.run(_spin, 5.0, (0.2, seen))            # 0.2 CPU-s > the 0.05 cap
    assert ["quick" in s for s in seen] == [True, False] and lanes.demoted == 1


def test_a_request_over_its_own_budget_in_the_quick_lane_is_stopped():
    lanes, seen = Lanes(quick_cpu_s=1.0), []
    with pytest.raises(Overtime):        # by its CPU time, or on a busy machine by the wall clock
        lanes.run(_spin, 0.05, (5.0, seen))
    assert len(seen) == 1 and "quick" in seen[0] and lanes.demoted == 0


def test_a_quick_request_waiting_for_another_computation_frees_its_worker():
    lanes, store = Lanes(quick_workers=1), ByteLRU(2**20)
    release, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(30)
        return "built"

    builder = threading.Thread(target=store.get_or_compute, args=("index", slow))
    builder.start()                                       # e.g. the warm-up building an index
    started.wait(10)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(
        lanes.run(store.get_or_compute, 30.0, ("index", lambda: "again"))))
    waiter.start()
    wait(lambda: lanes.waits == 1, 10)
    assert lanes.run(lambda: "cheap", 8.0, estimate=0.01) == "cheap"   # the one worker is free
    assert not got
    release.set()
    waiter.join(30)
    builder.join(30)
    assert got == ["built"]


def _run_in_order(lanes: Lanes, queue, asks: list[list[tuple[str, float | None]]]) -> list[str]:
    """The order in which ``lanes`` runs jobs: the first ask of ``asks`` holds the lane's one worker
    until every later group of asks is queued (``queue``: that lane's queue), one group after
    another."""
    release, started, order = threading.Event(), threading.Event(), []
    first = asks[0][0][0]

    def job(tag: str) -> None:
        if tag == first:
            started.set()
            release.wait(30)
        order.append(tag)

    threads, queued = [], 0
    for n, group in enumerate(asks):
        for tag, estimate in group:
            threads.append(threading.Thread(target=lanes.run, args=(job, 60.0, (tag,)),
                                            kwargs={"estimate": estimate}))
            threads[-1].start()
        if n == 0:
            started.wait(10)                                       # the first holds the one worker
        else:
            queued += len(group)
            wait(lambda q=queued: queue.qsize() == q, 10)
    release.set()
    for t in threads:
        t.join(30)
    return order


def test_the_heavy_lane_runs_a_short_request_before_longer_ones_queued_earlier():
    lanes = Lanes(heavy_workers=1, slack=4.0)
    order = _run_in_order(lanes, lanes.heavy, [[("first", 1.0)], [("long", 8.0), ("longer", 8.0)],
                                               [("short", 1.0)]])
    assert order == ["first", "short", "long", "longer"]


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_heavy_lane_and_training_run_at_a_lower_priority():
    base = _nice()
    if base >= 19:
        pytest.skip("already at the lowest priority")
    lanes = Lanes(heavy_nice=5)
    assert lanes.run(_nice, 5.0, estimate=100.0) == min(19, base + 5)
    assert lanes.run(_nice, 5.0, estimate=0.0) == base

    seen: list[int] = []

    def factory(*args, **kwargs) -> Trainer:
        seen.append(_nice())
        return Trainer(*args, **kwargs)

    pool = TrainingPool(workers=1, trainer_factory=factory, nice=5)
    rid = pool.submit("s", TEXT, cfg(seed=3, max_steps=2))
    wait(lambda: pool.snapshot(rid, "s").status == "done", 60)
    assert seen == [min(19, base + 5)] and _nice() == base
    assert pool.close(30)


def test_the_quick_lane_runs_a_cheap_trace_before_an_unpriced_request_queued_earlier():
    """The soak's script threads waited in the quick lane: an ordinary trace (priced at
    milliseconds) queued behind unpriced generations (up to the 0.5 CPU-s cap each)."""
    lanes = Lanes(quick_workers=1, heavy_workers=1)
    order = _run_in_order(lanes, lanes.quick, [[("first", None)], [("generation", None)], [("trace", 0.01)]])
    assert order == ["first", "trace", "generation"]
