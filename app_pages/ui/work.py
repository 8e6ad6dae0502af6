"""Heavy work off the script thread, with a deadline: :func:`run_heavy` runs a backend call in a
small bounded pool under ``rnnviz.deadline`` (the backend's long loops stop themselves with
``Overtime`` once it passes) and waits at most that long, so one hostile request cannot hold a
script thread, and at most POOL_WORKERS heavy computations run at once on the server. The cost
model (``rnnviz.cost``) decides beforehand how much a request may do; :func:`reduced` shows its
"Reduced because …" note."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

import streamlit as st

from rnnviz import cost
from rnnviz.deadline import Overtime, deadline

#: Heavy computations running at once, server-wide (the server has 2 cores).
POOL_WORKERS = 2
_POOL = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="rnnviz-heavy")
#: Expected failures of a heavy request: shown as a message, never as a stack trace.
LIMITS = (Overtime, cost.CostError)


def _job(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    with deadline(seconds):
        return fn(*args, **kwargs)


def run_heavy(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in the heavy-work pool, stopped after ``rnnviz.cost.deadline_seconds()``
    (raises Overtime). Exceptions of ``fn`` propagate unchanged."""
    seconds = cost.deadline_seconds()
    future = _POOL.submit(_job, fn, seconds, args, kwargs)
    try:
        return future.result(timeout=seconds + 1.0)
    except FutureTimeout:
        future.cancel()                 # still queued: never starts; running: stops at its next check
        raise Overtime(seconds) from None


def reduced(*plans: cost.Plan | None) -> None:
    """Show each plan's "Reduced because …" note (nothing when it was not reduced)."""
    for plan in plans:
        if plan is not None and plan.note:
            st.info(plan.note)


def limit_message(what: str, err: Exception) -> str:
    """The page's words for a refused or stopped request."""
    if isinstance(err, Overtime):
        return (f"The {what} was {err}, so the server stays responsive for everyone: use a shorter "
                "text or a smaller model.")
    return str(err)
