"""The pinned unit: one hidden unit followed on every view (issue 28, "follow one unit everywhere").

It lives in the URL as ``unit=L0 h[203]`` (the unit's one name, :func:`rnnviz.units.names.unit_name`)
and in this session, so it survives view switches and a copied link reproduces it. A pinned unit is
highlighted in Hidden states, shown first in Step-through and preselected where a view picks a unit.
A link naming a unit this model does not have is dropped, and the page says so.
"""

from __future__ import annotations

import re

import streamlit as st

from rnnviz import CharRNN
from rnnviz.units.names import unit_name

URL_KEY = "unit"
_SESSION = "pinned_unit"
_NAME = re.compile(r"L(0|[1-9][0-9]{0,2}) ([a-z]{1,2})\[(0|[1-9][0-9]{0,5})\]")


def parse_unit(text: str, model: CharRNN) -> tuple[int, str, int] | None:
    """(layer, kind, index) of a unit name valid for ``model`` ("L0 h[203]"), else None."""
    m = _NAME.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        return None
    layer, kind, index = int(m.group(1)), m.group(2), int(m.group(3))
    cfg = model.config
    if layer >= cfg.num_layers or kind not in model.spec.state_kinds or index >= cfg.hidden_size:
        return None
    return layer, kind, index


def pinned_any() -> tuple[int, str, int] | None:
    """The pinned unit as named (layer, state, index), not checked against a model: for a view that
    shows several models (Compare says which of them have it)."""
    raw = st.query_params.get(URL_KEY) or st.session_state.get(_SESSION)
    m = _NAME.fullmatch(raw.strip()) if isinstance(raw, str) else None
    return None if m is None else (int(m.group(1)), m.group(2), int(m.group(3)))


def pinned(model: CharRNN) -> tuple[int, str, int] | None:
    """The pinned unit for ``model`` (from the link, else this session), written back to the URL."""
    raw = st.query_params.get(URL_KEY)
    if raw is None:
        raw = st.session_state.get(_SESSION)
    if raw is None:
        return None
    unit = parse_unit(raw, model)
    if unit is None:
        st.caption(f"The pinned unit {str(raw)[:40]!r} is not a unit of this model "
                   f"(L0…L{model.config.num_layers - 1}, {'/'.join(model.spec.state_kinds)}, "
                   f"0…{model.config.hidden_size - 1}); nothing is pinned.")
        st.session_state.pop(_SESSION, None)
        if URL_KEY in st.query_params:
            del st.query_params[URL_KEY]
        return None
    name = unit_name(*unit)
    st.session_state[_SESSION] = name
    if st.query_params.get(URL_KEY) != name:
        st.query_params[URL_KEY] = name
    return unit


def _set(name: str | None) -> None:
    if name is None:
        st.session_state.pop(_SESSION, None)
        if URL_KEY in st.query_params:
            del st.query_params[URL_KEY]
    else:
        st.session_state[_SESSION] = name
        st.query_params[URL_KEY] = name


def unit_in(labels: dict) -> str | None:
    """The unit name among a clicked point's labels (``{"x": …, "y": …}``: rows of a heatmap or a
    bar chart are named "L0 h[203]"; a bold "L0 h[3] · paren depth" tick counts by its name)."""
    for axis in ("y", "x"):
        text = labels.get(axis)
        if isinstance(text, str):
            m = _NAME.match(text.strip())
            if m is not None:
                return m.group(0)
    return None


def pin_point(labels: dict) -> None:
    """A chart's click callback (``show_chart(..., on_click=pin_point)``): pin the clicked row's
    unit. Its name is checked against the model on the next run (:func:`pinned`)."""
    name = unit_in(labels)
    if name is not None:
        _set(name)


def pin_row(key: str, names: list[str]) -> None:
    """A table's selection callback (``st.dataframe(key=key, on_select=…)``): pin the selected row's
    unit, ``names[row]``."""
    state = st.session_state.get(key) or {}
    rows = (state.get("selection") or {}).get("rows") or []
    if rows and isinstance(rows[0], int) and 0 <= rows[0] < len(names):
        pin_point({"y": names[rows[0]]})


def unit_table(rows, key: str, column: str = "unit") -> None:
    """A table (a list of dicts or a DataFrame) with one unit per row, its name in ``column``:
    clicking a row pins that unit."""
    names = [str(n) for n in rows[column]] if hasattr(rows, "columns") else [str(r[column]) for r in rows]
    st.dataframe(rows, hide_index=True, width="stretch", key=key, on_select=lambda: pin_row(key, names),
                 selection_mode="single-row")


def pin_button(unit: tuple[int, str, int], current: tuple[int, str, int] | None, key: str) -> None:
    """A "★ Pin L0 h[3]" button (or "Unpin" when that unit is the pinned one)."""
    name = unit_name(*unit)
    if current == unit:
        st.button(f"Unpin {name}", key=key, on_click=_set, args=(None,))
    else:
        st.button(f"★ Pin {name}", key=key, on_click=_set, args=(name,),
                  help="Follow this unit on every view: highlighted in Hidden states, first in "
                       "Step-through (kept in the link as unit=…).")


def preselect(unit: tuple[int, str, int] | None, widgets: tuple[str, str, str], url_keys: tuple[str, ...],
              marker: str) -> None:
    """Open a view's unit pickers (the session keys of its layer, state and index widgets, before
    they are drawn) on the pinned unit, each time a new unit is pinned; a link that sets the
    pickers itself (``url_keys``) keeps its own choice the first time."""
    if unit is None:
        return
    name = unit_name(*unit)
    if st.session_state.get(marker) == name:
        return
    first = marker not in st.session_state
    st.session_state[marker] = name
    if first and any(k in st.query_params for k in url_keys):
        return
    for widget, value in zip(widgets, unit):
        st.session_state[widget] = value


def pinned_panel(unit: tuple[int, str, int], chars: list[str], values: list[float], font_size: int) -> None:
    """The pinned unit at the top of a view: its activation over the sidebar text, and an Unpin."""
    from rnnviz.plots.units import unit_text_html
    name = unit_name(*unit)
    with st.container(key="nav-pinned", border=True):
        left, right = st.columns([5, 1], vertical_alignment="center")
        left.markdown(f"**★ Pinned unit {name}** on the sidebar text (blue negative, red positive); "
                      "the Ablation tab opens on it.")
        right.button(f"Unpin {name}", key="pinned_unpin", on_click=_set, args=(None,))
        st.html(unit_text_html(chars, values, f"★ {name}", font_size=font_size))
