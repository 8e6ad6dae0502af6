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
    with deadline(0.2):
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
