"""The training pool behind the Train view: shared identical runs, the worker cap and its queue,
release / heartbeat cancellation, stop and continue, the caps, no leaked threads, bad text."""

from __future__ import annotations

import re
import threading
import time

import pytest

import rnnviz
from rnnviz.training.limits import TrainLimits, TrainRefused, check_text, decode_text
from rnnviz.training.trainer import Trainer
from rnnviz.training.pool import TrainingPool, run_config

TEXT = ("the time traveller (for so it will be convenient to speak of him) was expounding a "
        "recondite matter to us. his grey eyes shone and twinkled, and his usually pale face was "
        "flushed and animated.\n") * 12
LIMITS = TrainLimits()


def cfg(**kw):
    base = dict(cell="gru", hidden=8, num_steps=8, batch_size=4, lr=0.01, max_steps=6)
    return run_config(**{**base, **kw})


class Counting:
    """A trainer factory counting constructions."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, *a, **kw):
        with self.lock:
            self.n += 1
        return Trainer(*a, **kw)


def wait(pred, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def baseline():
    n = threading.active_count()
    yield n
    wait(lambda: threading.active_count() <= n, 30)


def test_identical_runs_are_computed_once(baseline):
    counter = Counting()
    pool = TrainingPool(workers=2, trainer_factory=counter, sample_every=3)
    ids = {pool.submit(f"student-{i}", TEXT, cfg()) for i in range(30)}
    assert len(ids) == 1
    rid = ids.pop()
    wait(lambda: pool.snapshot(rid, "student-0").status == "done")
    snap = pool.snapshot(rid, "student-7")
    assert counter.n == 1 and snap.holders == 30 and snap.step == 6
    assert len(snap.losses) == len(snap.grad_before) == len(snap.grad_after) == 6
    assert all(a <= b + 1e-6 for a, b in zip(snap.grad_after, snap.grad_before))
    assert [(s.step, s.weights) for s in snap.samples] == [(0, "latest"), (3, "latest"), (6, "latest"),
                                                          (snap.best_step, "best validation")]
    assert snap.probe_h.shape == (len(snap.probe_chars), 8)
    model = rnnviz.load_model_bytes(snap.checkpoint, name="trained")
    assert model.provenance["train_config"]["seed"] == 0 and model.provenance["corpus_sha256"]
    # a different seed is a different run
    other = pool.submit("student-0", TEXT, cfg(seed=1))
    assert other != rid
    for i in range(30):
        pool.release(rid, f"student-{i}")
    pool.release(other, "student-0")
    assert pool.join(60) and pool.stats() == {"runs": 0, "queued": 0, "running": 0, "threads": 0}


def test_runs_are_deterministic(baseline):
    losses = []
    for _ in range(2):
        pool = TrainingPool(workers=1, sample_every=100)
        rid = pool.submit("s", TEXT, cfg())
        wait(lambda: pool.snapshot(rid, "s").status == "done")
        losses.append(pool.snapshot(rid, "s").losses)
        pool.close()
    assert losses[0] == losses[1]


def test_worker_cap_and_queue_positions(baseline):
    pool = TrainingPool(workers=1, sample_every=1000)
    ids = [pool.submit(f"s{i}", TEXT, cfg(seed=i, max_steps=100_000)) for i in range(3)]
    wait(lambda: pool.snapshot(ids[0], "s0").status == "running")
    snaps = [pool.snapshot(r, f"s{i}") for i, r in enumerate(ids)]
    assert [s.status for s in snaps] == ["running", "queued", "queued"]
    assert [s.queue_position for s in snaps] == [0, 1, 2]
    st = pool.stats()
    assert st["running"] == 1 and st["threads"] == 1 and st["queued"] == 2
    pool.release(ids[1], "s1")                      # leaving the queue moves the others up
    assert pool.snapshot(ids[2], "s2").queue_position == 1
    pool.release(ids[0], "s0")                      # the running one is cancelled, the next starts
    wait(lambda: pool.snapshot(ids[2], "s2").status == "running")
    pool.release(ids[2], "s2")
    assert pool.join(60) and pool.stats()["runs"] == 0


def test_release_stops_unshared_but_not_shared_runs(baseline):
    pool = TrainingPool(workers=2, sample_every=1000)
    rid = pool.submit("a", TEXT, cfg(max_steps=100_000))
    assert pool.submit("b", TEXT, cfg(max_steps=100_000)) == rid
    wait(lambda: pool.snapshot(rid, "a").step > 2)
    pool.release(rid, "a")
    step = pool.snapshot(rid, "b").step
    wait(lambda: pool.snapshot(rid, "b").step > step + 2)     # b still holds it: it goes on
    pool.release(rid, "b")
    assert pool.join(60)
    assert pool.snapshot(rid, "b") is None and pool.stats()["threads"] == 0


def test_silent_session_is_released(baseline):
    pool = TrainingPool(workers=1, sample_every=1000, heartbeat_s=0.3)
    rid = pool.submit("gone", TEXT, cfg(max_steps=100_000))
    assert pool.join(60)                   # nobody polls: the worker's tick releases it
    assert pool.stats()["runs"] == 0 and pool.snapshot(rid, "gone") is None


def test_stop_continue_and_shared_stop(baseline):
    pool = TrainingPool(workers=1, sample_every=1000)
    rid = pool.submit("a", TEXT, cfg(max_steps=100_000))
    wait(lambda: pool.snapshot(rid, "a").step >= 2)
    assert pool.stop(rid, "a") == "paused"
    wait(lambda: pool.snapshot(rid, "a").status == "paused")
    snap = pool.snapshot(rid, "a")
    assert snap.checkpoint and rnnviz.load_model_bytes(snap.checkpoint).provenance["total_steps"] == snap.step
    fresh = pool.submit("b", TEXT, cfg(max_steps=100_000))
    assert fresh != rid                                               # a paused run is private
    pool.release(fresh, "b")
    assert pool.resume(rid, "a")
    wait(lambda: pool.snapshot(rid, "a").step > snap.step)
    shared = pool.submit("c", TEXT, cfg(max_steps=100_000, seed=5))
    assert pool.submit("d", TEXT, cfg(max_steps=100_000, seed=5)) == shared
    assert pool.stop(shared, "c") == "left" and pool.snapshot(shared, "d") is not None
    pool.close()
    assert pool.stats()["threads"] == 0


def test_wall_time_cap(baseline):
    pool = TrainingPool(workers=1, limits=TrainLimits(max_seconds=0.5), sample_every=1000)
    rid = pool.submit("a", TEXT, cfg(max_steps=100_000))
    wait(lambda: pool.snapshot(rid, "a").status == "done")
    assert "wall-time cap of 0.5 s" in pool.snapshot(rid, "a").message
    pool.close()


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("   \n", "empty"), ("a", "single character"), ("a" * 5000, "single character"),
    ("ab" * 20, "at least 200"), ("abc\x00def" * 100, "binary"),
    ("".join(chr(i % 32) for i in range(3000)), "binary"),
])
def test_bad_text_messages(text, words):
    with pytest.raises(TrainRefused, match=words):
        check_text(text, "none", LIMITS)



def test_an_accepted_text_is_checked_once(monkeypatch):
    """The Train page checks its text on every run; the per-character scan of an accepted text
    runs once, a refused text is refused again (refusals are not remembered)."""
    from rnnviz.training import limits

    scans: list[int] = []
    scan = limits._binary_fraction
    monkeypatch.setattr(limits, "_binary_fraction", lambda t: scans.append(len(t)) or scan(t))
    text = "the time traveller checked once, " * 30 + str(time.monotonic())   # new to the cache
    first = check_text(text, "d2l", LIMITS)
    assert first == check_text(text, "d2l", LIMITS) and len(scans) == 1
    assert first == re.sub("[^A-Za-z]+", " ", text).lower()               # the book's cleaning
    assert check_text(text, "none", LIMITS) == text and len(scans) == 2    # another preprocessing
    for _ in range(2):
        with pytest.raises(TrainRefused, match="binary"):
            check_text("abc\x00def" * 100, "none", LIMITS)


def test_bad_files_and_caps():
    with pytest.raises(TrainRefused, match="not UTF-8"):
        decode_text(b"\xff\xfe\x00binary\x89PNG" * 50, LIMITS)
    with pytest.raises(TrainRefused, match="capped at 2,000,000 characters"):
        decode_text(b"x" * 50_000_000, LIMITS)
    with pytest.raises(TrainRefused, match="capped at 2,000,000"):
        check_text("ab" * 25_000_000, "none", LIMITS)
    assert decode_text("\ufeffhé".encode(), LIMITS) == "hé"
    pool = TrainingPool(workers=1)
    with pytest.raises(TrainRefused, match="parameters; this server caps models"):
        pool.submit("a", TEXT, cfg(cell="lstm", hidden=4096, layers=2))
    with pytest.raises(TrainRefused, match="give at least 200"):   # too short for any B × T (#28: fit_text)
        pool.submit("a", "ab", cfg(batch_size=64, num_steps=64))
    full = TrainingPool(workers=1, max_runs=1, sample_every=1000)
    full.submit("a", TEXT, cfg(max_steps=100_000))
    with pytest.raises(TrainRefused, match="cap"):
        full.submit("b", TEXT, cfg(seed=3))
    assert full.close()


@pytest.mark.parametrize("error,says", [
    (RuntimeError("boom in the optimiser"), "RuntimeError: boom in the optimiser); try again with smaller"),
    (MemoryError(), "ran out of memory for this run; lower the hidden size"),
])
def test_a_failed_run_is_logged_with_its_traceback_and_the_page_message_says_what_to_do(
        baseline, caplog, error, says):
    def failing(*a, **kw):
        raise error

    pool = TrainingPool(workers=1, trainer_factory=failing, sample_every=1000)
    with caplog.at_level("ERROR", logger="rnnviz.training.run"):
        rid = pool.submit("a", TEXT, cfg())
        wait(lambda: pool.snapshot(rid, "a").status == "failed")
    snap = pool.snapshot(rid, "a")
    assert snap.message.startswith("training failed") and says in snap.message
    [record] = [r for r in caplog.records if r.name == "rnnviz.training.run"]
    assert f"training run {rid} failed" in record.getMessage() and record.exc_info[0] is type(error)
    pool.release(rid, "a")
    assert pool.close()


def test_a_paragraph_trains_at_the_default_batch_and_length():
    """#28: the defaults (B = 32, T = 64) refused a 2,000-character paragraph; now B shrinks."""
    pool = TrainingPool(workers=1, sample_every=1000)
    text = TEXT[:2000]
    fitted, note = pool.fit_text(text, cfg(batch_size=32, num_steps=64))
    assert (fitted.batch_size, fitted.num_steps) == (16, 64) and "B = 16, T = 64" in note
    rid = pool.submit("a", text, cfg(batch_size=32, num_steps=64, max_steps=2))
    snap = pool.snapshot(rid, "a")
    assert snap is not None and snap.config["batch_size"] == 16
    pool.release(rid, "a")
    assert pool.fit_text(TEXT * 20, cfg(batch_size=32, num_steps=64))[1] is None
    assert pool.close(60)
