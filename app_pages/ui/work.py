"""Heavy work off the script thread, with a deadline: :func:`run_heavy` runs a backend call in one
of two bounded lanes (``rnnviz.serving.lanes``) under ``rnnviz.serving.deadline`` (the backend's
long loops stop themselves with ``Overtime`` once it passes) and waits at most that long, so one
hostile request cannot hold a script thread. Cheap requests (estimate ≤ lanes.QUICK_SECONDS, or
unknown and done within lanes.QUICK_CPU_S of CPU) run in the quick lane and never queue behind
heavy ones; at most HEAVY_WORKERS heavy computations run at once on the server, at a lower CPU
priority, leaving a core to everyone else. The cost
model (``rnnviz.serving.cost``) decides beforehand how much a request may do; :func:`reduced` shows its
"Reduced because …" note. :func:`cached_heavy` keeps such results for every session in a small
byte-bounded store; :func:`prefetch` starts one in the background, in a bounded pool of plain
threads (no Streamlit call runs there), so that the script's own call later reads the result."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Hashable

import streamlit as st

from app_pages.ui.settings import settings
from rnnviz.serving import cost
from rnnviz.serving.background import Background, Failed, Pending, Ready
from rnnviz.serving.cache import ByteLRU
from rnnviz.serving.deadline import WALL_FACTOR, Overtime
from rnnviz.serving.lanes import Lanes

log = logging.getLogger(__name__)

#: Heavy computations running at once, server-wide (the server has 2 cores: one is left to the
#: quick lane and the script threads); cheap ones run beside them in QUICK_WORKERS threads.
HEAVY_WORKERS = 1
QUICK_WORKERS = 2
LANES = Lanes(quick_workers=QUICK_WORKERS, heavy_workers=HEAVY_WORKERS)
#: Prefetches running at once (each waits on a lane).
PREFETCH_WORKERS = 2
#: Expected failures of a heavy request: shown as a message, never as a stack trace.
LIMITS = (Overtime, cost.CostError)
#: Byte budget of the heavy results shared by every session (gradient curves, chains, maps).
RESULT_CACHE_BYTES = 128 * 2**20
_RESULTS = ByteLRU(RESULT_CACHE_BYTES, max_entries=128, ttl=3600)
#: Prefetches queued or running at most, server-wide; more are skipped (the script computes).
PREFETCH_MAX = 8
_PREFETCH_POOL = ThreadPoolExecutor(max_workers=PREFETCH_WORKERS, thread_name_prefix="rnnviz-prefetch")
_PREFETCH_SLOTS = threading.BoundedSemaphore(PREFETCH_MAX)
#: Heavy results polled for instead of waited on (the same store and keys as cached_heavy).
BACKGROUND = Background(LANES, _RESULTS)
#: A view's part estimated over this many seconds is computed in the background and drawn when
#: ready (heavy_state); cheaper ones are computed in the script run, where a placeholder, its
#: polling and the page's rerun would cost more than they do.
WAIT_SECONDS = 0.1


def run_heavy(op: str, fn: Callable[..., Any], *args: Any, estimate: float | None = None,
              **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in its lane (quick or heavy, from ``estimate``: the cost model's
    seconds, None when not priced), stopped after ``cost.deadline_seconds(op)`` (raises Overtime).
    ``op`` (required): the operation's name in rnnviz.serving.cost.OPERATIONS, which sets its
    deadline. Exceptions of ``fn`` propagate unchanged."""
    if op not in cost.OPERATIONS:
        raise TypeError(f"run_heavy needs the operation's name first (one of cost.OPERATIONS), got {op!r}")
    seconds = cost.deadline_seconds(op, request_seconds=settings().request_seconds)
    return LANES.run(fn, seconds, args, kwargs, estimate=estimate)


def cached_heavy(op: str, fn: Callable[..., Any], key: Hashable, *args: Any, estimate: float | None = None,
                 **kwargs: Any) -> Any:
    """``run_heavy(op, fn, *args, estimate=estimate, **kwargs)``, kept for every session in a byte-bounded store
    (RESULT_CACHE_BYTES, 128 entries, 1 h) under (fn's module and name, ``key``).

    key: a hashable identity of every argument that changes the result (a ModelRef for the model,
    never the model itself). The value is shared, not copied: treat it as read-only. A key is
    computed by one caller at a time, and a caller that asks for a key being computed (say by
    :func:`prefetch`) waits for that result; a failed computation is not kept, so the next caller
    computes again and gets the error itself."""
    return _RESULTS.get_or_compute(result_key(fn, key),
                                   lambda: run_heavy(op, fn, *args, estimate=estimate, **kwargs))


def heavy_state(op: str, fn: Callable[..., Any], key: Hashable, *args: Any, estimate: float,
                expected: tuple = (), start_only: bool = False, **kwargs: Any) -> Ready | Pending | Failed | None:
    """A view's heavy part as a state for app_pages.ui.later.show_when_ready: computed here (Ready,
    via cached_heavy) when ``estimate`` is at most WAIT_SECONDS, else :func:`background_heavy`'s
    state (queued in the heavy lane, not waited for); ``expected`` errors and LIMITS as Failed.
    ``start_only``: only queue a heavy one (None; a cheap one is left to the drawing call)."""
    try:
        if estimate <= WAIT_SECONDS:
            return None if start_only else Ready(cached_heavy(op, fn, key, *args, estimate=estimate, **kwargs))
        return background_heavy(op, fn, key, *args, estimate=estimate, expected=expected, **kwargs)
    except (*expected, *LIMITS) as err:
        return Failed(err)


def result_key(fn: Callable[..., Any], key: Hashable) -> tuple:
    """Where the result of ``fn`` for ``key`` is kept (cached_heavy and background_heavy share it)."""
    return fn.__module__, fn.__qualname__, key


def background_heavy(op: str, fn: Callable[..., Any], key: Hashable, *args: Any, estimate: float | None = None,
                     kind: Hashable = None, expected: tuple = (), keep: bool = False,
                     request_seconds: float | None = None, **kwargs: Any) -> Ready | Pending | Failed:
    """:func:`cached_heavy`'s result without waiting for it (rnnviz.serving.background): Ready
    with the value, Failed with the error, or Pending (then it is queued in the heavy lane, under
    ``op``'s deadline). ``kind``: runs whose measured time predicts this one's (default ``op``);
    ``expected``: errors the page explains (logged without a traceback, as LIMITS are);
    ``keep`` and ``request_seconds``: for the start-up warm-up (no poller, no script run)."""
    if op not in cost.OPERATIONS:
        raise TypeError(f"background_heavy needs the operation's name first (one of cost.OPERATIONS), got {op!r}")
    budget = settings().request_seconds if request_seconds is None else request_seconds
    return BACKGROUND.poll(result_key(fn, key), fn, cost.deadline_seconds(op, request_seconds=budget), args,
                           kwargs, estimate=estimate, kind=kind if kind is not None else op,
                           expected=(*LIMITS, *expected), keep=keep)


def prefetch(call: Callable[..., Any], *args: Any) -> None:
    """Start ``call(*args)`` in the background, where ``call`` reads its result through
    :func:`cached_heavy` (and calls no Streamlit function): it runs while the script computes and
    draws what comes before, and the script's own ``call(*args)`` later waits for it or reads the
    stored result. Errors are left to the script's own call (it computes again and shows its
    message). Bounded: PREFETCH_WORKERS run at a time, and at most PREFETCH_MAX wait, server-wide; past that a
    prefetch is skipped. The work itself goes through run_heavy's lanes and deadline, so this adds
    no CPU, only overlap (Gradients: the Jacobian chain beside the norm curve and the gradient map)."""
    if not _PREFETCH_SLOTS.acquire(blocking=False):
        return

    def job() -> None:
        try:
            call(*args)
        except Exception:           # noqa: BLE001 — the script's own call computes again and reports
            log.debug("prefetch of %s failed; the script's call reports it", call, exc_info=True)
        finally:
            _PREFETCH_SLOTS.release()

    _PREFETCH_POOL.submit(job)


def reduced(*plans: cost.Plan | None) -> None:
    """Show each plan's "Reduced because …" note (nothing when it was not reduced)."""
    for plan in plans:
        if plan is not None and plan.note:
            st.info(plan.note)


def limit_message(what: str, err: Exception) -> str:
    """The page's words for a refused or stopped request."""
    if isinstance(err, Overtime) and err.wall:
        return (f"The {what} was stopped: the server is busy and it waited over {WALL_FACTOR:g} × its "
                f"{err.seconds:.1f} s time budget. Try again in a moment.")
    if isinstance(err, Overtime):
        return (f"The {what} was stopped after its {err.seconds:.1f} s time budget, so the server stays "
                "responsive for everyone: use a shorter text or a smaller model.")
    return str(err)
