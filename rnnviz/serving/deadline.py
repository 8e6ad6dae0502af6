"""Cooperative deadlines for long computations: torch work cannot be killed from outside, so the
long loops (trace chunks, backward steps, Jacobian chain, gradient map, generation, ablation, unit
ranks) call :func:`check` once per step, which raises :class:`Overtime` once the deadline of the
current thread (set with :func:`deadline`) has passed. Without a deadline :func:`check` is free.

A deadline measures the work's own CPU time (``time.thread_time`` of the thread doing it), so a
busy machine slows a request instead of stopping it; a wall-clock cap of WALL_FACTOR × the budget
still stops work that waits too long for a core (``Overtime.wall``).

    with deadline(5.0):
        gradient_map(model, text)     # raises Overtime after ~5 s of its own CPU time
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

#: The wall-clock cap of a deadline, as a multiple of its CPU-time budget.
WALL_FACTOR = 3.0
#: (CPU-time end, wall-clock end, wall factor) of the current thread's deadline.
_DEADLINE: ContextVar[tuple[float, float, float] | None] = ContextVar("rnnviz_deadline", default=None)


class Overtime(TimeoutError):
    """A computation ran past its time budget and was stopped (``seconds``: the budget; ``wall``:
    stopped by the wall-clock cap on a busy machine rather than by its own CPU time)."""

    def __init__(self, seconds: float, wall: bool = False, wall_factor: float = WALL_FACTOR):
        super().__init__(seconds)
        self.seconds, self.wall, self.wall_factor = seconds, wall, wall_factor

    def __str__(self) -> str:
        if self.wall:
            return (f"This computation was stopped: the server is busy, and it waited over "
                    f"{self.wall_factor:g} × its {self.seconds:.1f} s time budget. Try again in a moment.")
        return f"This computation was stopped after its {self.seconds:.1f} s time budget."


@contextmanager
def deadline(seconds: float, wall_factor: float = WALL_FACTOR) -> Iterator[None]:
    """Within this block (in this thread), :func:`check` raises Overtime after ``seconds`` of this
    thread's CPU time, or ``wall_factor`` × ``seconds`` of wall clock, whichever comes first."""
    if not wall_factor >= 1:
        raise ValueError(f"wall_factor must be at least 1, not {wall_factor!r}")
    token = _DEADLINE.set((time.thread_time() + seconds, time.monotonic() + wall_factor * seconds,
                           wall_factor))
    try:
        yield
    except Overtime as err:
        err.seconds = seconds
        raise
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise :class:`Overtime` if the current deadline has passed (no-op without a deadline)."""
    ends = _DEADLINE.get()
    if ends is None:
        return
    if time.thread_time() >= ends[0]:
        raise Overtime(0.0)
    if time.monotonic() >= ends[1]:
        raise Overtime(0.0, wall=True, wall_factor=ends[2])
