"""#28 item 5: the page says when a run memorises, and since which step."""

from __future__ import annotations

from rnnviz.training.memorise import memorising


def _h(rows):
    return [{"step": s, "train_loss": tr, "val_loss": va} for s, tr, va in rows]


def test_validation_flat_while_training_falls_is_memorising():
    h = _h([(100, 2.0, 1.60), (200, 1.2, 1.58), (300, 0.6, 1.62), (400, 0.1, 1.65)])
    m = memorising(h)
    assert m is not None and m.since == 200 and m.best_val == 1.58 and m.train_now == 0.1
    assert "since step 200" in m.sentence() and "memorising" in m.sentence()


def test_still_improving_or_too_early_is_not():
    assert memorising(_h([(100, 2.0, 1.9), (200, 1.5, 1.6), (300, 1.2, 1.4)])) is None
    assert memorising(_h([(100, 2.0, 1.6), (200, 1.5, 1.7)])) is None
    assert memorising(_h([(100, 1.0, 1.6), (200, 1.0, 1.7), (300, 0.99, 1.8)])) is None   # train flat too
    assert memorising([]) is None
