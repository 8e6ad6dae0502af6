"""Heavy results polled for, not waited on (issue 27: rnnviz.serving.background).

- The first ask returns Pending at once while the heavy lane is busy, with its place in the
  queue; the value is Ready later and kept in the shared store (the next ask reads it).
- A blocking caller of the same key waits for the background computation (computed once).
- A failure is Failed (logged: expected ones without a traceback, others with it), shown for
  keep_s, then the next ask computes again.
- A queued computation nobody asked about for abandon_s is dropped when its turn comes.
- At most max_jobs are queued here; more asks get Pending with no place.
- A warm-up (queued with keep, nobody polling) goes after users' requests; once a user asks
  for it, it moves up the queue as if just asked.
"""

from __future__ import annotations

import logging
import threading

from rnnviz.serving.background import Background, Failed, Pending, Ready
from rnnviz.serving.cache import ByteLRU
from rnnviz.serving.lanes import Lanes

from .test_training_pool import wait


def _held(lanes: Lanes) -> threading.Event:
    """Hold the heavy lane's one worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()
    lanes.submit_heavy(lambda: (started.set(), release.wait(60)), 120.0, estimate=0.1)
    assert started.wait(30)
    return release


def _ready(bg: Background, key, fn, args=(), **kw):
    """Ask until the state is no longer Pending (the way the page polls); the final state."""
    states = []
    wait(lambda: not isinstance(states.append(bg.poll(key, fn, 60.0, args, **kw)) or states[-1], Pending), 60)
    return states[-1]


def test_first_ask_is_pending_with_its_place_then_ready_and_kept():
    lanes, store = Lanes(heavy_workers=1), ByteLRU(2**20)
    bg = Background(lanes, store)
    release = _held(lanes)
    calls = []
    first = bg.poll("a", lambda x: calls.append(x) or x * 2, 60.0, (21,), estimate=1.0)
    second = bg.poll("b", lambda: "b", 60.0, estimate=5.0)
    assert first == Pending(0, 0.0, 1.0) and second.position == 1 and not calls
    assert bg.poll("a", lambda x: 0, 60.0, (1,)) == Pending(0, 0.0, 1.0)      # asked again: not queued twice
    release.set()
    assert _ready(bg, "a", lambda x: 0, (1,)) == Ready(42) and calls == [21]
    assert store.peek("a") == (True, 42)
    assert _ready(bg, "b", lambda: 0) == Ready("b")


def test_a_blocking_caller_waits_for_the_background_computation():
    lanes, store = Lanes(heavy_workers=1), ByteLRU(2**20)
    bg = Background(lanes, store)
    release, calls, got = _held(lanes), [], []
    assert isinstance(bg.poll("k", lambda: calls.append(1) or "bg", 60.0), Pending)
    waiter = threading.Thread(target=lambda: got.append(store.get_or_compute("k", lambda: "blocking")))
    waiter.start()
    release.set()
    waiter.join(60)
    assert got == ["bg"] and calls == [1]


def test_failures_are_shown_for_keep_s_logged_and_then_computed_again(caplog):
    now = [0.0]
    lanes, store = Lanes(heavy_workers=1), ByteLRU(2**20)
    bg = Background(lanes, store, keep_s=10.0, clock=lambda: now[0])
    tries = []

    def refused():
        tries.append(1)
        raise ValueError("too long a text")

    with caplog.at_level(logging.INFO, logger="rnnviz.serving.background"):
        state = _ready(bg, "r", refused, expected=(ValueError,))
        assert isinstance(state, Failed) and str(state.error) == "too long a text"
        assert isinstance(_ready(bg, "boom", lambda: 1 / 0), Failed)
    expected_log = [r for r in caplog.records if "too long a text" in r.getMessage()]
    crash_log = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert expected_log and expected_log[0].exc_info is None and crash_log
    assert isinstance(bg.poll("r", refused, 60.0, expected=(ValueError,)), Failed) and len(tries) == 1
    now[0] = 11.0                                     # past keep_s: the next ask tries again
    assert isinstance(bg.poll("r", refused, 60.0, expected=(ValueError,)), Pending)
    assert isinstance(_ready(bg, "r", refused, expected=(ValueError,)), Failed) and len(tries) == 2


def test_a_computation_nobody_waits_for_is_dropped_and_keep_is_not():
    now = [0.0]
    lanes, store = Lanes(heavy_workers=1), ByteLRU(2**20)
    bg = Background(lanes, store, abandon_s=5.0, clock=lambda: now[0])
    release, calls = _held(lanes), []
    bg.poll("left", lambda: calls.append("left"), 60.0)
    bg.poll("warm", lambda: calls.append("warm") or "w", 60.0, keep=True)
    now[0] = 6.0                                      # nobody asked since: the user left
    release.set()
    wait(lambda: store.peek("warm")[0], 60)
    assert calls == ["warm"] and not store.peek("left")[0]
    assert isinstance(bg.poll("left", lambda: "back", 60.0), Pending)    # a new ask queues it again
    assert _ready(bg, "left", lambda: "back") == Ready("back")


def test_at_most_max_jobs_are_queued():
    """Two slots: a third ask waits for one; a finished job (remembered for keep_s, here ten
    minutes) frees its slot at once."""
    lanes, store = Lanes(heavy_workers=1), ByteLRU(2**20)
    bg = Background(lanes, store, max_jobs=2, keep_s=600.0)
    release = _held(lanes)
    states = [bg.poll(k, lambda k=k: k, 60.0) for k in "abc"]
    assert [s.position for s in states] == [0, 1, None] and lanes.heavy.qsize() == 2
    release.set()
    assert [_ready(bg, k, lambda k=k: k) for k in "abc"] == [Ready("a"), Ready("b"), Ready("c")]


def test_a_warm_up_a_user_asks_for_moves_up_the_queue():
    lanes, store = Lanes(heavy_workers=1, slack=4.0), ByteLRU(2**20)
    bg = Background(lanes, store)
    release = _held(lanes)
    assert bg.poll("warm", lambda: "w", 60.0, estimate=0.1, keep=True).position == 0
    assert bg.poll("user", lambda: "u", 60.0, estimate=5.0).position == 0      # a user's: before the warm-up
    assert bg.poll("warm", lambda: "w", 60.0, keep=True).position == 1          # the warm-up itself asking: stays
    assert bg.poll("warm", lambda: "w", 60.0).position == 0                     # a user asks: as if just asked
    assert bg.poll("user", lambda: "u", 60.0).position == 1
    release.set()
    assert _ready(bg, "warm", lambda: 0) == Ready("w") and _ready(bg, "user", lambda: 0) == Ready("u")
