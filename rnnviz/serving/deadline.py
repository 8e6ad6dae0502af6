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

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

#: The wall-clock cap of a deadline, as a multiple of its CPU-time budget.
WALL_FACTOR = 3.0
#: Wall-clock seconds between two reads of the thread's CPU clock in :func:`check`. Reading it is
#: a system call made while holding the GIL (~1 µs alone, but on a busy machine the kernel often
#: takes the core away on its way back, with the GIL still held); the stepped loops call check once
#: per character, and py-spy on the soak's server found the GIL's holder inside that read in 22 %
#: of its samples, still 14 % when read every 2 ms. A deadline is passed by at most this much
#: more CPU time (4 % of the quick lane's 0.5 s cap).
CPU_READ_EVERY = 0.02
#: [CPU-time end, wall-clock end, wall factor, next CPU-clock read (monotonic)] of the current
#: thread's deadline (a list: check() moves the last item forward).
_DEADLINE: ContextVar[list[float] | None] = ContextVar("rnnviz_deadline", default=None)
#: Set in threads that may not wait for another thread's computation (rnnviz.serving.lanes' quick lane).
_NO_WAITING: ContextVar[bool] = ContextVar("rnnviz_no_waiting", default=False)


class MustWait(Exception):
    """Raised by :func:`wait_for` in a :func:`no_waiting` block instead of waiting: ``event`` is
    what it would have waited for (another thread's computation of the same value)."""

    def __init__(self, event: threading.Event):
        super().__init__("waiting for another thread's computation")
        self.event = event


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
    token = _DEADLINE.set([time.thread_time() + seconds, time.monotonic() + wall_factor * seconds,
                           wall_factor, 0.0])
    try:
        yield
    except Overtime as err:
        err.seconds = seconds
        raise
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise :class:`Overtime` if the current deadline has passed (no-op without a deadline).
    The wall clock is read every call (cheap); the thread's CPU clock at most every
    CPU_READ_EVERY seconds and whenever the wall-clock cap has passed (so a deadline passed on
    both counts is reported as the CPU budget, as before)."""
    ends = _DEADLINE.get()
    if ends is None:
        return
    now = time.monotonic()
    if now < ends[3] and now < ends[1]:
        return
    ends[3] = now + CPU_READ_EVERY
    if time.thread_time() >= ends[0]:
        raise Overtime(0.0)
    if now >= ends[1]:
        raise Overtime(0.0, wall=True, wall_factor=ends[2])


@contextmanager
def no_waiting() -> Iterator[None]:
    """Within this block (in this thread), :func:`wait_for` raises MustWait instead of waiting."""
    token = _NO_WAITING.set(True)
    try:
        yield
    finally:
        _NO_WAITING.reset(token)


def wait_for(event: threading.Event) -> None:
    """Wait until ``event`` is set (another thread's computation of a value this one needs),
    checking the current deadline every 50 ms; in a :func:`no_waiting` block raise
    :class:`MustWait` instead, so the caller can wait without holding a worker."""
    if event.is_set():
        return
    if _NO_WAITING.get():
        raise MustWait(event)
    while not event.wait(0.05):
        check()
