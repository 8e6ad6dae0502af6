"""The pinned unit or feature: one hidden unit, or one dictionary feature of a shipped sparse
autoencoder, followed on every view (issue 28, "follow one unit everywhere"; issue 29, features
"usable wherever a unit is").

It lives in the URL as ``unit=L0 h[203]`` (the unit's one name, :func:`rnnviz.units.names.unit_name`)
or ``unit=L0 feat[17]`` (a feature's one name, :func:`rnnviz.units.basis.feature_name`) and in this
session, so it survives view switches and a copied link reproduces it (a link of the old form,
``unit=L0 f[17]``, still pins the feature and is rewritten to the new name). One value, :class:`Pin`, is
either; :func:`parse_pin` is the one check of a name against the model (and its SAEs). A pinned unit
is highlighted in Hidden states, shown first in Step-through and preselected where a view picks a
unit; a pinned feature is shown as coloured text (its activation through the SAE) on the same views.
A link naming a unit or feature this model does not have is dropped, and the page says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

from app_pages.ui.url import Invalid, url_drop, url_set, use
from rnnviz import CharRNN
from rnnviz.units.basis import feature_name, parse_feature_name
from rnnviz.units.names import unit_name

#: The link's key (declared in app_pages.ui.params, validated by app_pages.ui.url with :func:`link_pin`)
#: and the session's key of the pinned name (None: nothing pinned).
URL_KEY, SESSION_KEY = "unit", "pinned_unit"
#: A unit's or a feature's name ("L0 h[203]", "L0 feat[17]"): which one it is, parse_pin says.
_NAME = re.compile(r"L(0|[1-9][0-9]{0,2}) ([a-z]{1,5})\[(0|[1-9][0-9]{0,5})\]")


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


@dataclass(frozen=True)
class Pin:
    """What is pinned: unit ``index`` of ``layer{layer}.{state}``, or (``feature``) feature ``index``
    of the sparse autoencoder on that state."""

    layer: int
    state: str
    index: int
    feature: bool = False

    @property
    def name(self) -> str:
        """The one name the views and the link use: "L0 h[203]" or "L0 feat[17]"."""
        return (feature_name if self.feature else unit_name)(self.layer, self.state, self.index)

    @property
    def unit(self) -> tuple[int, str, int] | None:
        """(layer, state, index) of a pinned unit; None for a feature."""
        return None if self.feature else (self.layer, self.state, self.index)

    def on(self, layer: int, state: str) -> int | None:
        """The pinned unit's index when it is a unit of ``layer{layer}.{state}``, else None."""
        return self.index if not self.feature and (self.layer, self.state) == (layer, state) else None


def parse_pin(text, model: CharRNN, features: dict | None = None) -> Pin | None:
    """The Pin a name stands for on ``model``: a unit name (:func:`parse_unit`), or a feature name
    of an SAE it has (``features``: (layer, state) → number of features of its shipped SAEs; the
    old form "L0 f[17]" of links too, when it is not a unit of the model); None when neither."""
    unit = parse_unit(text, model)
    if unit is not None:
        return Pin(*unit)
    f = parse_feature_name(text)
    if f is None:
        return None
    return Pin(*f, feature=True) if f[2] < (features or {}).get(f[:2], 0) else None


def pinned_any() -> Pin | None:
    """The pinned unit or feature as named, not checked against a model: for a view that shows
    several models (Compare says which of them have it)."""
    raw = st.query_params.get(URL_KEY) or st.session_state.get(SESSION_KEY)
    f = parse_feature_name(raw)
    if f is not None:
        return Pin(*f, feature=True)
    m = _NAME.fullmatch(raw.strip()) if isinstance(raw, str) else None
    return None if m is None else Pin(int(m.group(1)), m.group(2), int(m.group(3)))


def _refused(raw, model: CharRNN, features: dict | None) -> str:
    if parse_feature_name(raw) is not None:
        have = ", ".join(f"{feature_name(l, s, 0)}…[{n - 1}]" for (l, s), n in sorted((features or {}).items()))
        return (f"The pinned feature {str(raw)[:40]!r} is not a dictionary feature of this model "
                f"({'its shipped SAEs have ' + have if have else 'no sparse autoencoder is shipped for it'}); "
                "nothing is pinned.")
    return (f"The pinned unit {str(raw)[:40]!r} is not a unit of this model "
            f"(L0…L{model.config.num_layers - 1}, {'/'.join(model.spec.state_kinds)}, "
            f"0…{model.config.hidden_size - 1}); nothing is pinned.")


def _expected(model: CharRNN, features: dict | None) -> str:
    """What a pin's name must be on ``model`` (the link's complaint: "unit=… (must be …)")."""
    cfg = model.config
    out = (f"a unit of this model (L0…L{cfg.num_layers - 1}, {'/'.join(model.spec.state_kinds)}, "
           f"0…{cfg.hidden_size - 1})")
    if features:
        out += " or a dictionary feature of its SAEs (" + ", ".join(
            f"{feature_name(l, s, 0)}…[{n - 1}]" for (l, s), n in sorted(features.items())) + ")"
    return out


def link_pin(raw: str, limits: dict) -> str:
    """The validation layer's parser of ``unit=`` (app_pages.ui.params): the one name of the unit or
    feature ``raw`` names on ``limits["model"]`` (``limits["features"]``: its SAEs' sizes), else
    Invalid saying what it must be."""
    pin = parse_pin(raw, limits["model"], limits.get("features"))
    if pin is None:
        raise Invalid(_expected(limits["model"], limits.get("features")))
    return pin.name


def pinned(model: CharRNN, features: dict | None = None) -> Pin | None:
    """The pinned unit or feature for ``model`` (this session's, else the link's, checked by the
    validation layer: a bad link value is named on the page), written back to the URL.
    ``features``: (layer, state) → size of the model's shipped SAEs (none: no feature pins)."""
    held = st.session_state.get(SESSION_KEY)
    if held is not None and parse_pin(held, model, features) is None:     # pinned on another model
        st.caption(_refused(held, model, features))
        st.session_state[SESSION_KEY] = None
    use(URL_KEY, model=model, features=features or {})
    name = st.session_state.get(SESSION_KEY)
    pin = None if name is None else parse_pin(name, model, features)
    if pin is None:
        url_drop(URL_KEY)
        return None
    url_set(URL_KEY, pin.name)
    return pin


def _set(name: str | None) -> None:
    st.session_state[SESSION_KEY] = name          # None, not absent: the link's value is not read again
    if name is None:
        url_drop(URL_KEY)
    else:
        st.query_params[URL_KEY] = name


def unit_in(labels: dict) -> str | None:
    """The unit (or feature) name among a clicked point's labels (``{"x": …, "y": …}``: rows of a
    heatmap or a bar chart are named "L0 h[203]" or "L0 feat[17]"; a bold "L0 h[3] · paren depth" tick
    counts by its name)."""
    for axis in ("y", "x"):
        text = labels.get(axis)
        if isinstance(text, str):
            m = _NAME.match(text.strip())
            if m is not None:
                return m.group(0)
    return None


def pin_point(labels: dict) -> None:
    """A chart's click callback (``show_chart(..., on_click=pin_point)``): pin the clicked row's
    unit or feature. Its name is checked against the model on the next run (:func:`pinned`)."""
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
    """A table (a list of dicts or a DataFrame) with one unit (or feature) per row, its name in
    ``column``: clicking a row pins it."""
    names = [str(n) for n in rows[column]] if hasattr(rows, "columns") else [str(r[column]) for r in rows]
    st.dataframe(rows, hide_index=True, width="stretch", key=key, on_select=lambda: pin_row(key, names),
                 selection_mode="single-row")


def pin_button(item: Pin, current: Pin | None, key: str) -> None:
    """A "★ Pin L0 h[3]" (or "★ Pin L0 feat[17]") button, or "Unpin" when that one is pinned."""
    name = item.name
    if current == item:
        st.button(f"Unpin {name}", key=key, on_click=_set, args=(None,))
    else:
        what = "feature" if item.feature else "unit"
        st.button(f"★ Pin {name}", key=key, on_click=_set, args=(name,),
                  help=f"Follow this {what} on every view: " + (
                      "its coloured text in Hidden states, Units, Step-through and Compare"
                      if item.feature else "highlighted in Hidden states, first in Step-through")
                  + " (kept in the link as unit=…).")


def preselect(pin: Pin | None, widgets: tuple[str, str, str], url_keys: tuple[str, ...],
              marker: str) -> None:
    """Open a view's unit pickers (the session keys of its layer, state and index widgets, before
    they are drawn) on the pinned unit, each time a new unit is pinned; a link that sets the
    pickers itself (``url_keys``) keeps its own choice the first time. A pinned feature has no
    unit to preselect."""
    if pin is None or pin.feature:
        return
    unit, name = pin.unit, pin.name
    if st.session_state.get(marker) == name:
        return
    first = marker not in st.session_state
    st.session_state[marker] = name
    if first and any(k in st.query_params for k in url_keys):
        return
    for widget, value in zip(widgets, unit):
        st.session_state[widget] = value


def pinned_panel(pin: Pin, chars: list[str], values: list[float], font_size: int, note: str = "") -> None:
    """The pinned unit or feature at the top of a view: its activation over the sidebar text (a
    feature's through its SAE, never negative), a ``note`` and an Unpin."""
    from rnnviz.plots.units import unit_text_html
    name = pin.name
    with st.container(key="nav-pinned", border=True):
        left, right = st.columns([5, 1], vertical_alignment="center")
        if pin.feature:
            left.markdown(f"**★ Pinned feature {name}**, a dictionary feature of the sparse autoencoder on "
                          f"layer{pin.layer}.{pin.state}, on the sidebar text (red where it is on). {note}")
        else:
            left.markdown(f"**★ Pinned unit {name}** on the sidebar text (blue negative, red positive). {note}")
        right.button(f"Unpin {name}", key="pinned_unpin", on_click=_set, args=(None,))
        st.html(unit_text_html(chars, values, f"★ {name}", font_size=font_size))
