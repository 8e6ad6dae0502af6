"""#28 item 4: the Train defaults fit the text — B and T shrink (with a note) instead of a refusal."""

from __future__ import annotations

import pytest

from rnnviz.training.data import epoch_batches, split_text
from rnnviz.training.fit_text import fit_to_text, needed_chars


@pytest.mark.parametrize("chars", [500, 800, 2_000, 5_000])
def test_a_paragraph_trains_at_the_defaults(chars):
    train, _ = split_text("x" * chars)
    b, t, note = fit_to_text(len(train), 32, 64)
    assert needed_chars(b, t) <= len(train)
    assert (note is None) == ((b, t) == (32, 64))
    if note:
        assert f"B = {b}, T = {t}" in note
    import torch
    ids = torch.arange(len(train)) % 7
    for seed in range(5):                           # every epoch offset still gives a minibatch
        assert epoch_batches(ids, b, t, "sequential", seed, 0)
        assert epoch_batches(ids, b, t, "random", seed, 0)


def test_a_long_text_keeps_the_settings_and_the_2000_character_paragraph_shrinks_b_first():
    assert fit_to_text(100_000, 32, 64) == (32, 64, None)
    b, t, _ = fit_to_text(1_800, 32, 64)
    assert (b, t) == (16, 64)
