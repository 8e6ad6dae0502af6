"""Cooperative deadlines for long computations: torch work cannot be killed from outside, so the
long loops (trace chunks, backward steps, Jacobian chain, gradient map, generation, ablation, unit
ranks) call :func:`check` once per step, which raises :class:`Overtime` once the deadline of the
current thread (set with :func:`deadline`) has passed. Without a deadline :func:`check` is free.

    with deadline(5.0):
        gradient_map(model, text)     # raises Overtime after ~5 s instead of running on
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_DEADLINE: ContextVar[float | None] = ContextVar("rnnviz_deadline", default=None)


class Overtime(TimeoutError):
    """A computation ran past its time budget and was stopped (``seconds``: the budget)."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"This computation was stopped after its {self.seconds:.1f} s time budget."


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Within this block (in this thread), :func:`check` raises Overtime after ``seconds``."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    except Overtime as err:
        err.seconds = seconds
        raise
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise :class:`Overtime` if the current deadline has passed (no-op without a deadline)."""
    end = _DEADLINE.get()
    if end is not None and time.monotonic() > end:
        raise Overtime(0.0)
