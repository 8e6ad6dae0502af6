"""Training memory is priced before a run (issue 27, finding 1): activation memory grows with
B·T·|V|, so a text of 99,000 distinct characters is refused (|V| cap) before anything is built,
and a large batch or length over a big vocabulary is shrunk, saying which, to fit the server's
memory per run. Peak memory is measured with tracemalloc and torch's allocations are never
reached (no model is built: the trainer factory would raise)."""

from __future__ import annotations

import tracemalloc

import pytest

from rnnviz.training import limits as L
from rnnviz.training.pool import TrainingPool, run_config


def _never(*_a, **_k):
    raise AssertionError("a trainer was built")


def _text(distinct: int, repeat: int = 1) -> str:
    chars = [chr(0xF0000 + i) for i in range(distinct)]      # plane-15 private use: "text" chars
    return ("".join(chars) + " ") * repeat


def test_ninety_nine_thousand_distinct_characters_are_refused_without_allocating():
    pool = TrainingPool(trainer_factory=_never)
    text = _text(99_000)
    tracemalloc.start()
    try:
        with pytest.raises(L.TrainRefused, match="99,001 different characters"):
            pool.submit("s", text, run_config(cell="rnn_tanh", hidden=16, batch_size=128, num_steps=256))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"
    pool.close(5)


def test_old_defaults_would_have_needed_gigabytes():
    assert L.step_bytes("rnn_tanh", 16, 1, 99_000, 32, 64) > 4e9
    assert L.step_bytes("rnn_tanh", 16, 1, 99_000, 128, 256) > 2.5e10


def test_a_big_vocabulary_shrinks_batch_then_length_and_says_so():
    b, t, note = L.fit_memory("lstm", 128, 2, 4_000, 128, 256)
    assert L.step_bytes("lstm", 128, 2, 4_000, b, t) <= L.MAX_STEP_BYTES
    assert b < 128 and note and "batch size 128 →" in note
    b2, t2, note2 = L.fit_memory("lstm", 128, 2, 4_000, 1, 256, max_bytes=2e6)
    assert (b2, t2 < 256) == (1, True) and "sequence length 256 →" in note2
    assert L.fit_memory("lstm", 128, 1, 80, 32, 64) == (32, 64, None)     # the defaults fit


def test_nothing_fits_is_refused_with_what_to_change():
    with pytest.raises(L.TrainRefused, match="even at batch 1"):
        L.fit_memory("lstm", 512, 2, 5_000, 4, 64, max_bytes=1e5)


def test_pool_applies_the_fit_before_queueing():
    pool = TrainingPool(trainer_factory=_never, workers=1)
    text = _text(3_000, repeat=40)
    cfg, note = pool.fit(text, run_config(cell="lstm", hidden=64, batch_size=128, num_steps=256))
    assert note and cfg.batch_size < 128
    pool.close(5)
