"""Batch size and sequence length that fit a training text (issue 28: the defaults refused a
2,000-character paragraph, "too short for batch size 32 × sequence length 64").

One epoch of d2l's minibatches needs at least ``B·T + T + 1`` characters in the training part of
the text (an offset of up to T − 1 characters, then B rows of T, plus the shifted targets; see
:func:`rnnviz.training.data.epoch_batches` and :meth:`TrainingPool.validate`). :func:`fit_to_text`
halves B first (down to :data:`MIN_BATCH`), then T (down to :data:`MIN_STEPS`), then B again, until
it does; a text of ≥ 500 characters always trains at the defaults this way.
"""

from __future__ import annotations

MIN_BATCH = 4
MIN_STEPS = 8


def needed_chars(batch_size: int, num_steps: int) -> int:
    """Characters the training part of a text needs for one minibatch of B × T."""
    return batch_size * num_steps + num_steps + 1


def fit_to_text(train_chars: int, batch_size: int, num_steps: int) -> tuple[int, int, str | None]:
    """(B, T, note): the largest halvings of ``batch_size`` then ``num_steps`` that a training
    text of ``train_chars`` characters holds, and a note saying what shrank (None: nothing did).
    When even B = 1, T = 1 does not fit, returns them and a note; the pool then refuses the text."""
    b, t = int(batch_size), int(num_steps)
    while needed_chars(b, t) > train_chars:
        if b > MIN_BATCH:
            b = max(MIN_BATCH, b // 2)
        elif t > MIN_STEPS:
            t = max(MIN_STEPS, t // 2)
        elif b > 1:
            b //= 2
        elif t > 1:
            t //= 2
        else:
            break
    if (b, t) == (batch_size, num_steps):
        return b, t, None
    return b, t, (f"The text is short for batch size {batch_size} × sequence length {num_steps} "
                  f"({needed_chars(batch_size, num_steps):,} training characters needed, "
                  f"{train_chars:,} here): it trains with B = {b}, T = {t}.")
