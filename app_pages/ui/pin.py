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


def pin_button(unit: tuple[int, str, int], current: tuple[int, str, int] | None, key: str) -> None:
    """A "★ Pin L0 h[3]" button (or "Unpin" when that unit is the pinned one)."""
    name = unit_name(*unit)
    if current == unit:
        st.button(f"Unpin {name}", key=key, on_click=_set, args=(None,))
    else:
        st.button(f"★ Pin {name}", key=key, on_click=_set, args=(name,),
                  help="Follow this unit on every view: highlighted in Hidden states, first in "
                       "Step-through (kept in the link as unit=…).")
