"""Where a trace stopped being finite: the first step whose states or output overflowed.

An exploding model (a ReLU RNN whose W_hh has spectral radius 100, output weights of ±3e38) is a
legal checkpoint; its states pass float32's largest value (3.4e38) and become inf, then NaN
(inf − inf). Views show such values as gaps and say where they began (:func:`describe`); nothing
may raise on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Overflow:
    step: int        #: first step t with a non-finite value
    name: str        #: the first tensor (in trace order) that is non-finite at that step

    def describe(self) -> str:
        return (f"This model's numbers overflowed at step t = {self.step} ({self.name} passed "
                f"float32's ±3.4e38 and became inf/NaN); from there on the page shows gaps, not values.")


def first_nonfinite_step(x: Tensor) -> int | None:
    """The first index along dim 0 where ``x`` holds inf or NaN, or None."""
    if x.numel() == 0 or not x.is_floating_point():
        return None
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else None


def first_overflow(cache: dict[str, Tensor]) -> Overflow | None:
    """The earliest (step, tensor) at which any per-step tensor of a trace is non-finite."""
    best: Overflow | None = None
    for name, x in cache.items():
        t = first_nonfinite_step(x)
        if t is not None and (best is None or t < best.step):
            best = Overflow(t, name)
    return best


def finite_or_none(x: float) -> float | None:
    """x, or None when it is inf/NaN (for tables and captions)."""
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None
