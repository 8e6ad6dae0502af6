"""Deadlines measure the work's own CPU time, with a wall-clock cap (issue 27, finding 6): a
request slowed by a busy machine (its thread waiting for a core) goes on; one that uses its CPU
budget, or waits past WALL_FACTOR × the budget, is stopped and says which."""

from __future__ import annotations

import time

import pytest

from rnnviz.serving.deadline import WALL_FACTOR, Overtime, check, deadline


def _spin_cpu(seconds: float) -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass


def test_waiting_for_a_core_does_not_use_the_budget():
    with deadline(0.2, wall_factor=1e4):   # a far wall cap: a busy machine only slows it
        time.sleep(0.3)            # past the budget in wall time, ~0 s of its own CPU: slowed only
        check()
        _spin_cpu(0.05)
        check()


def test_its_own_cpu_time_is_what_stops_it():
    # A wall cap far away: on a machine busy enough that 0.1 s of this thread's CPU takes over
    # 3 × 0.1 s of wall clock, the default cap would stop it first (a different, tested rule).
    with pytest.raises(Overtime) as info, deadline(0.1, wall_factor=1e4):
        for _ in range(1000):
            _spin_cpu(0.01)
            check()
    assert not info.value.wall and info.value.seconds == 0.1


def test_a_wall_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="wall_factor"), deadline(1.0, wall_factor=0.5):
        pass


def test_the_wall_clock_cap_names_its_factor():
    with pytest.raises(Overtime) as info, deadline(0.01, wall_factor=2):
        time.sleep(0.05)
        check()
    assert info.value.wall and "2 × its" in str(info.value)


def test_the_wall_clock_cap_still_stops_it():
    with pytest.raises(Overtime) as info, deadline(0.05):
        time.sleep(WALL_FACTOR * 0.05 + 0.05)
        check()
    assert info.value.wall and "busy" in str(info.value)


class _CountingClock:
    """rnnviz.serving.deadline's view of the time module, counting reads of the CPU clock."""

    def __init__(self) -> None:
        self.cpu_reads = 0
        self.monotonic = time.monotonic

    def thread_time(self) -> float:
        self.cpu_reads += 1
        return time.thread_time()


def test_check_reads_the_cpu_clock_at_most_every_few_milliseconds(monkeypatch):
    """The stepped loops call check() once per character; reading the thread's CPU clock is a
    system call made while holding the GIL. It is read at most every CPU_READ_EVERY s of wall
    clock (the wall clock is read every call), not on every call as before."""
    from rnnviz.serving import deadline as dl

    clock = _CountingClock()
    monkeypatch.setattr(dl, "time", clock)
    calls, t0 = 0, time.monotonic()
    with deadline(60.0, wall_factor=1e4):
        while calls < 20_000 or time.monotonic() - t0 < 10 * dl.CPU_READ_EVERY:
            check()
            calls += 1
    elapsed = time.monotonic() - t0
    assert 2 <= clock.cpu_reads <= elapsed / dl.CPU_READ_EVERY + 3, (clock.cpu_reads, calls, elapsed)


def test_a_budget_is_passed_by_at_most_one_read_interval_of_cpu():
    from rnnviz.serving.deadline import CPU_READ_EVERY

    t0 = time.thread_time()
    with pytest.raises(Overtime) as info, deadline(0.05, wall_factor=1e4):
        while True:
            check()
    used = time.thread_time() - t0
    assert not info.value.wall
    assert 0.05 <= used <= 0.05 + CPU_READ_EVERY + 0.01, used
