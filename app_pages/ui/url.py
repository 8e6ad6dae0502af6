"""URL state: widgets seeded from ``st.query_params`` once per session, their values kept valid,
and the view's state written back so a copied link reproduces the view."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

#: Query-parameter prefixes of the views (a view drops the other views' keys from the URL).
VIEW_PREFIXES = ("hs.", "pr.", "st.", "gen.", "gr.", "cmp.", "units.", "lesson.")


def _sync_query_param(key: str, value: str) -> None:
    if st.query_params.get(key) != value:
        st.query_params[key] = value


def url_default(widget_key: str, param: str, default: Any, parse: Callable[[str], Any] = str,
                valid: Callable[[Any], bool] | None = None) -> None:
    """Before creating a widget with ``key=widget_key``: seed its value from the URL parameter
    ``param`` (parsed and validated; ``default`` when missing or invalid), once per session."""
    if widget_key in st.session_state:
        return
    value = default
    raw = st.query_params.get(param)
    if raw is not None:
        try:
            parsed = parse(raw)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and (valid is None or valid(parsed)):
            value = parsed
    st.session_state[widget_key] = value


def keep_choice(widget_key: str, options: list, default: Any, format_func: Callable[[Any], str] = str) -> None:
    """Before a selectbox / radio / select_slider with ``key=widget_key``: make its state one of
    ``options`` (else ``default``). Before the widget runs, Streamlit may hold its raw browser value
    (the formatted label, or a list of them for select_slider); that is mapped back to the option."""
    if widget_key not in st.session_state:
        return
    value = st.session_state[widget_key]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    try:
        if any(type(value) is type(o) and value == o for o in options):
            st.session_state[widget_key] = value
            return
    except Exception:  # noqa: BLE001 - any odd value is simply replaced
        pass
    labels = [format_func(o) for o in options]
    if isinstance(value, str) and value in labels:
        st.session_state[widget_key] = options[labels.index(value)]
    else:
        st.session_state[widget_key] = default


def keep_int(widget_key: str, lo: int, hi: int, default: int) -> int:
    """Before a slider / number_input with ``key=widget_key``: make its state an int in [lo, hi]
    (clamped; ``default`` when unreadable; the raw browser value of a slider is a list) and return it."""
    value = st.session_state.get(widget_key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    try:
        number = int(round(float(value)))
    except (TypeError, ValueError, OverflowError):
        number = default
    number = max(lo, min(hi, number))
    st.session_state[widget_key] = number
    return number


def url_set(param: str, value: Any) -> None:
    """Write a view's state into the URL (``st.query_params``) so the link reproduces the view."""
    _sync_query_param(param, str(value))


def url_drop(param: str) -> None:
    """Remove ``param`` from the URL (if it is there)."""
    if param in st.query_params:
        del st.query_params[param]


def view_params(prefix: str) -> None:
    """Drop the URL keys of other views (a copied link then only holds this view's state)."""
    for key in list(st.query_params.keys()):
        if key.startswith(VIEW_PREFIXES) and not key.startswith(prefix):
            del st.query_params[key]


def parse_bool(raw: str) -> bool:
    """A URL flag: "1", "true", "yes" or "on" (any case) is True."""
    return raw.lower() in ("1", "true", "yes", "on")
