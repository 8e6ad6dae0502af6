"""#28 items 5 and 6, backend: a paused or finished run publishes both its latest and its
best-validation weights, each labelled with its step; every sample says which weights wrote it and
from which prefix; the prefix can be changed while the run trains and after it."""

from __future__ import annotations


import pytest

import rnnviz
from rnnviz.generate import generate
from rnnviz.training import evaluate_loss, split_text
from rnnviz.training.pool import TrainingPool, run_config
from rnnviz.training.samples import BEST, DEFAULT_PREFIX, LATEST, SAMPLE_CHARS, TEMPERATURE

from .test_training_pool import TEXT, wait


@pytest.fixture
def pool():
    p = TrainingPool(workers=1, sample_every=3)
    yield p
    assert p.close(60)


def cfg(**kw):
    return run_config(**{**dict(cell="gru", hidden=8, num_steps=8, batch_size=4, lr=0.05, max_steps=12,
                                eval_every=3), **kw})


def val_loss(model) -> float:
    _, val = split_text(TEXT, 0.1)
    return evaluate_loss(model, model.vocab.encode(val).ids)


def test_a_finished_run_publishes_latest_and_best_weights_with_their_steps(pool):
    rid = pool.submit("s", TEXT, cfg())
    wait(lambda: pool.snapshot(rid, "s").status == "done")
    snap = pool.snapshot(rid, "s")
    best_row = min(snap.history, key=lambda r: (r["val_loss"], r["step"]))
    latest = rnnviz.load_model_bytes(snap.latest_checkpoint)
    best = rnnviz.load_model_bytes(snap.checkpoint)
    assert snap.step == 12 and snap.best_step == best_row["step"]
    assert (latest.provenance["weights"], latest.provenance["steps"]) == (LATEST, 12)
    assert (best.provenance["weights"], best.provenance["steps"]) == (BEST, best_row["step"])
    # the weights are the ones named: their validation loss is the history's at that step
    assert val_loss(latest) == pytest.approx(snap.history[-1]["val_loss"], abs=1e-5)
    assert val_loss(best) == pytest.approx(best_row["val_loss"], abs=1e-5)
    assert latest.provenance["val_loss"] == pytest.approx(snap.history[-1]["val_loss"])
    # the model is opened on the start of the text's training part
    assert snap.trained_text and TEXT.startswith(snap.trained_text)
    assert len(snap.trained_text) <= int(len(TEXT) * 0.9)


def test_each_sample_says_which_weights_wrote_it_from_which_prefix(pool):
    rid = pool.submit("s", TEXT, cfg(), prefix="his grey ")
    wait(lambda: pool.snapshot(rid, "s").status == "done")
    snap = pool.snapshot(rid, "s")
    assert [(s.step, s.weights) for s in snap.samples] == [(0, LATEST), (3, LATEST), (6, LATEST), (9, LATEST),
                                                          (12, LATEST), (snap.best_step, BEST)]
    assert {s.prefix for s in snap.samples} == {"his grey "}
    best = rnnviz.load_model_bytes(snap.checkpoint)
    want = generate(best, "his grey ", SAMPLE_CHARS, temperature=TEMPERATURE, seed=0).generated
    assert snap.samples[-1].text == want
    # after the run: a new prefix samples both weights now
    assert pool.set_prefix(rid, "s", "was ")
    snap = pool.snapshot(rid, "s")
    assert [(s.step, s.weights, s.prefix) for s in snap.samples[-2:]] == [
        (12, LATEST, "was "), (snap.best_step, BEST, "was ")]
    latest = rnnviz.load_model_bytes(snap.latest_checkpoint)
    assert snap.samples[-2].text == generate(latest, "was ", SAMPLE_CHARS, temperature=TEMPERATURE,
                                             seed=0).generated
    assert not pool.set_prefix(rid, "someone else", "x")


def test_the_prefix_changes_while_the_run_trains(pool):
    rid = pool.submit("s", TEXT, cfg(max_steps=100_000))
    wait(lambda: pool.snapshot(rid, "s").samples)
    assert pool.snapshot(rid, "s").samples[0].prefix == DEFAULT_PREFIX
    assert pool.set_prefix(rid, "s", "the time ")
    n = len(pool.snapshot(rid, "s").samples)
    wait(lambda: len(pool.snapshot(rid, "s").samples) > n + 1)
    assert pool.snapshot(rid, "s").samples[-1].prefix == "the time "
    pool.stop(rid, "s")
    wait(lambda: pool.snapshot(rid, "s").status == "paused")
    snap = pool.snapshot(rid, "s")
    assert snap.latest_checkpoint is not None and snap.samples[-1].weights == BEST


def test_an_empty_prefix_falls_back_to_the_default(pool):
    rid = pool.submit("s", TEXT, cfg(max_steps=3), prefix="")
    wait(lambda: pool.snapshot(rid, "s").status == "done")
    assert {s.prefix for s in pool.snapshot(rid, "s").samples} == {DEFAULT_PREFIX}
