"""Heavy work off the script thread, with a deadline: :func:`run_heavy` runs a backend call in a
small bounded pool under ``rnnviz.serving.deadline`` (the backend's long loops stop themselves with
``Overtime`` once it passes) and waits at most that long, so one hostile request cannot hold a
script thread, and at most POOL_WORKERS heavy computations run at once on the server. The cost
model (``rnnviz.serving.cost``) decides beforehand how much a request may do; :func:`reduced` shows its
"Reduced because …" note."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from app_pages.ui.settings import settings
from rnnviz.serving import cost
from rnnviz.serving.deadline import Overtime, deadline

#: Heavy computations running at once, server-wide (the server has 2 cores).
POOL_WORKERS = 2
_POOL = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="rnnviz-heavy")
#: Expected failures of a heavy request: shown as a message, never as a stack trace.
LIMITS = (Overtime, cost.CostError)


def _job(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    with deadline(seconds):
        return fn(*args, **kwargs)


def run_heavy(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in the heavy-work pool, stopped after ``rnnviz.serving.cost.deadline_seconds()``
    (raises Overtime). Exceptions of ``fn`` propagate unchanged."""
    seconds = cost.deadline_seconds(request_seconds=settings().request_seconds)
    future = _POOL.submit(_job, fn, seconds, args, kwargs)
    try:
        return future.result(timeout=seconds + 1.0)
    except FutureTimeout:
        future.cancel()                 # still queued: never starts; running: stops at its next check
        raise Overtime(seconds) from None


def prefetch(cached: Callable[..., Any], *args: Any) -> None:
    """Start ``cached(*args)`` (an ``st.cache_data`` function of this page) in a background thread,
    so that it runs while the script computes and draws what comes before it; the script's own call
    later, with the same arguments, waits for that computation (Streamlit computes a cache key once:
    a second caller waits on its lock) and reads its value. Errors are not kept: the script's call
    then computes again and shows its message. The work itself still goes through run_heavy's pool
    and deadline, so this adds no CPU, only overlap (Gradients: the Jacobian chain beside the norm
    curve and the gradient map)."""
    def job() -> None:
        try:
            cached(*args)
        except BaseException:               # noqa: BLE001 — the script's own call reports errors;
            pass                            # a stop or rerun of the session ends the thread

    thread = threading.Thread(target=job, name="rnnviz-prefetch", daemon=True)
    add_script_run_ctx(thread, get_script_run_ctx())
    thread.start()


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
