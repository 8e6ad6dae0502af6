"""Going to another view after a click: asked for in the click's callback, done at the top of the
next run, and kept until that view has run.

``st.switch_page`` asks for a rerun of another page. A rerun the browser asks for before that one
starts (a fragment's timer left from the view before, a widget) is folded into it, and the newer
request's page wins (Streamlit 1.67, ``ScriptRequests``): the switch is lost and the user stays
where the click was. So the wish stays in the session until the view it names runs; each run of
another view before then switches again, at most :data:`MAX_TRIES` times.
"""

from __future__ import annotations

import streamlit as st

from app_pages.ui.params import VIEWS

#: Session-state key of the wish: (the view's URL path, switches tried so far).
KEY = "_goto"
MAX_TRIES = 3


def go(url_path: str) -> None:
    """In a callback: go to the view at ``url_path`` (params.View.url_path; "" the default view)."""
    st.session_state[KEY] = (url_path, 0)


def follow(url_path: str) -> None:
    """At the top of every run (app.py), before any widget; ``url_path``: the view this run shows.
    Arrived (or tried enough): the wish is forgotten; else the run switches to the view wished for."""
    wish = st.session_state.get(KEY)
    if wish is None:
        return
    target, tries = wish
    if target == url_path or tries >= MAX_TRIES:
        del st.session_state[KEY]
        return
    st.session_state[KEY] = (target, tries + 1)
    st.switch_page(next(v.page for v in VIEWS if v.url_path == target))
