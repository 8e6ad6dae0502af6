"""Send a running script's elements to the browser in a few batches instead of one by one.

Streamlit's server flushes each session's outgoing messages every 5 ms, so a script that computes
between its elements (a trace, a unit order, a figure) reaches the browser as 10–25 separate bursts
of deltas, and the browser re-renders the page (React, styles, layout, paint) for each: ~10 ms of
Chromium CPU per burst on these pages, whatever the burst holds (twenty captions 10 ms apart cost
the browser 3.4× what the same twenty sent at once do). Streamlit has no setting for this, so
:func:`batch_script_messages` wraps ``AppSession.flush_browser_queue``: while a session's script
runs, its messages wait up to ``window_s`` (from the first one held), then go together; when the
run ends (or stops for a rerun) everything goes at once. A run shorter than the window arrives as
one batch; a long one still shows its progress every ``window_s`` (a wake-up timer, so a long
computation after an element does not hold it back). Nothing is dropped or reordered.

Measured (``python -m tools.bench_page --views … --modes unbatched inplace [--pin]``, README): with
the app's 60 ms window, 5–19 % less browser CPU per text commit on Hidden states, Predictions and
Gradients (×0.81–0.95), reruns ×0.81–1.13, the time to redrawn charts within ±11 %: a modest gain.
A longer window saves less, not more, where the browser has a core of its own: it then waits for
the whole run instead of drawing the first elements meanwhile (200 ms: the same CPU, 0.2 s later).

It uses two private names of Streamlit (``AppSession.flush_browser_queue``, ``AppSession._state``);
where they are missing it changes nothing and says so (``tests/test_batching.py`` fails then).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

_LOG = logging.getLogger(__name__)
#: The window when RNNVIZ_MESSAGE_BATCH_MS does not set one (milliseconds; 0 = Streamlit's flushing).
DEFAULT_WINDOW_MS = 60
_INSTALLED = False


def batch_script_messages(window_s: float | None = None) -> bool:
    """Hold a running script's messages for up to ``window_s`` seconds (None: RNNVIZ_MESSAGE_BATCH_MS
    / 1000, default DEFAULT_WINDOW_MS; ≤ 0: leave Streamlit's flushing as it is). Idempotent (app.py
    calls it on every run; the first call decides). Returns True when batching is in place."""
    global _INSTALLED
    if _INSTALLED:
        return True
    if window_s is None:
        window_s = float(os.environ.get("RNNVIZ_MESSAGE_BATCH_MS") or DEFAULT_WINDOW_MS) / 1000
    if window_s <= 0:
        return False
    try:
        from streamlit.runtime.app_session import AppSession, AppSessionState
        original = AppSession.flush_browser_queue
        running = AppSessionState.APP_IS_RUNNING
    except (ImportError, AttributeError) as err:
        _LOG.warning("rnnviz: Streamlit's messages are not batched (%s)", err)
        return False

    def flush_browser_queue(session) -> list:
        try:
            if getattr(session, "_state", None) != running:
                session.__dict__.pop("_rnnviz_held_since", None)
                return original(session)
            now = time.monotonic()
            since = session.__dict__.get("_rnnviz_held_since")
            if since is None:       # the first message held: wake the flush loop when the window ends
                session._rnnviz_held_since = now
                asyncio.get_running_loop().call_later(window_s, session._message_enqueued_callback)
                return []
            if now - since < window_s:
                return []
            session.__dict__.pop("_rnnviz_held_since", None)
        except Exception:  # noqa: BLE001 - never hold a message back because of this wrapper
            session.__dict__.pop("_rnnviz_held_since", None)
        return original(session)

    AppSession.flush_browser_queue = flush_browser_queue
    _INSTALLED = True
    return True
