"""Training capacity is fair (issue 27, finding 8).

- Only queued and training runs count toward the cap: 32 sessions each holding a paused run do not
  refuse Train to a 33rd (the oldest paused runs are forgotten to make room).
- The queue is fair per session: one session's second run waits behind every other session's first.
- While others wait, a run trains at most ``slice_s`` seconds at a time, then goes back to the
  queue and later continues where it stopped (it still finishes all its steps).
"""

from __future__ import annotations

import time

from rnnviz.training.pool import TrainingPool, run_config

from .test_training_pool import TEXT, cfg, wait


def test_paused_runs_do_not_count_toward_the_cap():
    pool = TrainingPool(workers=1, max_runs=4)
    ids = []
    for i in range(4):
        rid = pool.submit(f"s{i}", TEXT, cfg(seed=i, max_steps=2))
        ids.append(rid)
        assert pool.stop(rid, f"s{i}") in ("paused", "gone")
    wait(lambda: all(pool.snapshot(r, f"s{i}").status in ("paused", "done")
                     for i, r in enumerate(ids)), 60)
    late = pool.submit("late", TEXT, cfg(seed=99, max_steps=2))   # was: "holds 4 runs (its cap)"
    wait(lambda: pool.snapshot(late, "late").status == "done", 120)
    assert pool.stats()["runs"] <= 4
    assert pool.close(30)


def test_queue_is_fair_per_session():
    pool = TrainingPool(workers=1)
    long = pool.submit("busy", TEXT, cfg(seed=1, max_steps=20_000))
    wait(lambda: pool.snapshot(long, "busy").status == "running", 60)
    mine = [pool.submit("greedy", TEXT, cfg(seed=10 + i, max_steps=20_000)) for i in range(3)]
    other = pool.submit("polite", TEXT, cfg(seed=50, max_steps=20_000))
    positions = {r: pool.snapshot(r, s).queue_position for r, s in
                 [(mine[0], "greedy"), (mine[1], "greedy"), (mine[2], "greedy"), (other, "polite")]}
    assert positions[mine[0]] == 1 and positions[other] == 2, positions
    assert positions[mine[1]] == 3 and positions[mine[2]] == 4
    assert pool.close(30)


def test_a_long_run_shares_the_trainer_while_others_wait():
    pool = TrainingPool(workers=1, slice_s=0.5)
    long = pool.submit("a", TEXT, cfg(seed=1, max_steps=20_000))
    wait(lambda: pool.snapshot(long, "a").status == "running", 60)
    short = pool.submit("b", TEXT, cfg(seed=2, max_steps=5))
    t0 = time.monotonic()
    wait(lambda: pool.snapshot(short, "b").status == "done", 60)
    assert time.monotonic() - t0 < 30                  # not behind 20,000 steps
    wait(lambda: pool.snapshot(long, "a").status == "running", 60)   # the long run continues
    step = pool.snapshot(long, "a").step
    assert step > 0
    assert pool.close(30)


def test_run_config_still_builds():
    assert run_config(max_steps=5).max_steps == 5
