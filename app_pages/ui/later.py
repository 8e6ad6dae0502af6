"""A part of a page drawn when its heavy result is ready, while the rest of the page works.

:func:`show_when_ready` asks for a result without waiting (``app_pages.ui.work.background_heavy``):
ready, it is drawn at once; failed, the error is explained; pending, a placeholder says what is
being computed, the request's place in the server's queue of heavy work and how long it should
take, and a fragment (``st.fragment(run_every=POLL_S)``) asks again every POLL_S seconds. When
the answer changes it reruns the page (``st.rerun()``), which draws the result in place of the
placeholder; a full run with nothing pending registers no polling fragment, so the polling stops
(Streamlit ends a page's fragment timers on every full run).

The computation runs in the heavy lane whether or not anyone waits, and its result is kept for
every session: the next visitor, or this one after a rerun, reads it at once.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from rnnviz.serving.background import Failed, Pending, Ready

#: Seconds between two polls of a pending result.
POLL_S = 1.0

State = Ready | Pending | Failed


def show_when_ready(ask: Callable[[], State], what: str, draw: Callable[[Any], None],
                    failed: Callable[[BaseException], None], height: int | None = None) -> bool:
    """Draw ``ask()``'s value with ``draw`` when it is Ready, explain a Failed one with ``failed``,
    else a placeholder (``what`` is being computed: its place in the queue, its expected time) that
    polls ``ask`` until it changes. ``ask`` must be cheap (it only looks the state up) and call no
    Streamlit function. True when the value was drawn.

    ``height`` (pixels): the placeholder, the value and the error are drawn in one box of that
    height (it scrolls if the value is taller), so what the page shows below it does not move
    when the value arrives: a click aimed at it does not miss."""
    if height is not None:
        with st.container(height=height, border=False):
            return show_when_ready(ask, what, draw, failed)
    state = ask()
    if isinstance(state, Ready):
        draw(state.value)
        return True
    if isinstance(state, Failed):
        failed(state.error)
        return False
    st.fragment(_poll, run_every=POLL_S)(ask, what)
    return False


def _poll(ask: Callable[[], State], what: str) -> None:
    state = ask()
    if not isinstance(state, Pending):
        st.rerun()          # the full run draws it (or its error) and ends this fragment's polling
    st.info(placeholder(what, state), icon=":material/hourglass_top:")


def placeholder(what: str, state: Pending) -> str:
    """The placeholder's words: what is computed, where it is in the queue, how long it takes."""
    est = state.estimate
    takes = "a few seconds" if est is None else f"about {est:.0f} s" if est >= 1.5 else "about a second"
    if state.running_s > 0:
        where = f"running for {state.running_s:.0f} s" + (
            f" (it takes {takes})" if est is None or state.running_s < est else "; the server is busy")
    elif state.position is None:
        where = f"waiting for the server's queue of heavy work (it takes {takes} once it starts)"
    elif state.position == 0:
        where = f"next in the server's queue of heavy work (it takes {takes})"
    else:
        where = f"number {state.position + 1} in the server's queue of heavy work (it takes {takes} once it starts)"
    return (f"{what}… {where}. It appears here when it is ready; the rest of the page works "
            "meanwhile.")
