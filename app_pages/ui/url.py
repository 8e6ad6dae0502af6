"""URL state: one validation layer between ``st.query_params`` and the widgets.

Every URL key is declared once in :mod:`app_pages.ui.params` (its type, default and range, the
range possibly depending on the model or the text: ``limits`` the view passes). Before a view
creates its widgets it calls :func:`use` with the keys of that section: a value from the link that
is malformed, given twice, non-finite, denormal, out of range or absurdly long is replaced by the
default and the page names it in one line ("Ignored from the link: …"); a value already held by
the widget is kept within the current range. After the widgets, :func:`sync` writes their values
back so a copied link reproduces the view.

A view's settings survive navigation: :func:`use` keeps a copy of each value for the session and
puts it back when the view is opened again (Streamlit drops the state of widgets not drawn in a run).

Why not ``bind="query-params"`` (Streamlit 1.67)? Measured: ``?x=inf`` on a bound integer
``number_input`` raises OverflowError inside Streamlit (an exception element); a bound selectbox
or radio with ``format_func`` reads and writes the *label*, so old links (``?hs.what=c``) would
stop working and every relabelled option would break links; bad values are dropped silently.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Any

import streamlit as st

#: A link's non-text value longer than this is refused unread.
MAX_RAW = 64
#: Numbers in links are ASCII only: ``\d``, int() and float() also accept full-width ``５``,
#: Arabic-Indic ``١٢`` and ``1_0``, which no one types into a link on purpose.
_INT = re.compile(r"[+-]?[0-9]{1,15}(\.0*)?")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: Session-state key of the copies that carry a view's settings across navigation.
_KEPT = "_url_kept"
#: Session-state key of this run's slot for the "Ignored from the link" line.
_NOTES = "_url_notes"
#: Session-state key of the values named in that line during this visit of a view: the line stays
#: for the visit (a run the page starts by itself, e.g. to draw a result that became ready, keeps it).
_NAMED = "_url_named"
IGNORED = "Ignored from the link (the default is used instead): "

Limits = dict[str, Any]


def _get(value: Any, limits: Limits) -> Any:
    """A declared field: a constant, or a function of the view's ``limits``."""
    return value(limits) if callable(value) else value


class Invalid(ValueError):
    """A URL value that cannot be used; the message says what the setting must be."""


@dataclass(frozen=True)
class Param:
    """One URL key: ``widget`` is the session-state key of the widget it seeds."""

    name: str
    widget: str
    default: Any

    def parse(self, raw: str, limits: Limits) -> Any:
        """The value of the URL text ``raw``; raises Invalid."""
        raise NotImplementedError

    def check(self, value: Any, limits: Limits) -> Any:
        """A widget's current value, kept valid under the current ``limits`` (else the default)."""
        try:
            return self.parse(self.encode(value), limits)
        except (Invalid, TypeError, ValueError, OverflowError):
            return _get(self.default, limits)

    def encode(self, value: Any) -> str:
        """The URL text of ``value``."""
        return str(value)

    def max_raw(self) -> int:
        """Longest link value read at all (longer ones are refused unread); the parser's own rule."""
        return MAX_RAW


@dataclass(frozen=True)
class Int(Param):
    lo: Any = 0
    hi: Any = 0
    multiple: int = 1

    def parse(self, raw: str, limits: Limits) -> int:
        lo, hi = _get(self.lo, limits), _get(self.hi, limits)
        rule = f"a whole number {lo}–{hi}" + (f" in steps of {self.multiple}" if self.multiple > 1 else "")
        if not _INT.fullmatch(raw.strip()):
            raise Invalid(rule)
        value = int(raw.strip().split(".")[0])
        if not lo <= value <= hi or value % self.multiple:
            raise Invalid(rule)
        return value

    def check(self, value: Any, limits: Limits) -> int:
        if isinstance(value, (list, tuple)) and len(value) == 1:   # a slider's raw browser value
            value = value[0]
        try:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            number = int(round(number))
        except (TypeError, ValueError, OverflowError):
            return _get(self.default, limits)
        lo, hi = _get(self.lo, limits), _get(self.hi, limits)
        number = max(lo, min(hi, number))
        return number - (number - lo) % self.multiple


@dataclass(frozen=True)
class Float(Param):
    lo: float = 0.0
    hi: float = 1.0
    step: float | None = None

    def parse(self, raw: str, limits: Limits) -> float:
        lo, hi = _get(self.lo, limits), _get(self.hi, limits)
        rule = f"a number {lo:g}–{hi:g}"
        if len(raw) > MAX_RAW or not _FLOAT.fullmatch(raw):
            raise Invalid(rule)
        value = float(raw)
        if not math.isfinite(value) or (value != 0 and abs(value) < sys.float_info.min):
            raise Invalid(rule)                       # nan, inf, denormal
        if not lo <= value <= hi:
            raise Invalid(rule)
        if self.step:                                 # onto the widget's grid (1e-10 → 0)
            value = min(hi, max(lo, lo + round((value - lo) / self.step) * self.step))
            value = round(value, 10)
        return value

    def check(self, value: Any, limits: Limits) -> float:
        try:
            return self.parse(repr(float(value)), limits)
        except (Invalid, TypeError, ValueError, OverflowError):
            return _get(self.default, limits)


@dataclass(frozen=True)
class Choice(Param):
    """One of ``choices``: a list of options, or a dict option → label (the label of a widget's
    ``format_func``; a raw browser value may be the label)."""

    choices: Any = ()

    def _options(self, limits: Limits) -> dict:
        choices = _get(self.choices, limits)
        return dict(choices) if isinstance(choices, dict) else {c: str(c) for c in choices}

    def parse(self, raw: str, limits: Limits) -> Any:
        options = self._options(limits)
        for option, label in options.items():
            if raw == str(option) or raw == label:
                return option
        shown = ", ".join(str(o) for o in list(options)[:8]) + (", …" if len(options) > 8 else "")
        raise Invalid(f"one of {shown}")

    def check(self, value: Any, limits: Limits) -> Any:
        if isinstance(value, list) and len(value) == 1:   # a select_slider's raw browser value
            value = value[0]
        options = self._options(limits)
        try:
            if any(type(value) is type(o) and value == o for o in options):
                return value
        except Exception:  # noqa: BLE001 - any odd value is simply replaced
            pass
        if isinstance(value, str):
            for option, label in options.items():
                if value == label:
                    return option
        return _get(self.default, limits)


@dataclass(frozen=True)
class Flag(Param):
    def parse(self, raw: str, limits: Limits) -> bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise Invalid("1 or 0")

    def check(self, value: Any, limits: Limits) -> bool:
        return value if isinstance(value, bool) else _get(self.default, limits)

    def encode(self, value: Any) -> str:
        return str(int(bool(value)))


@dataclass(frozen=True)
class Text(Param):
    """Free text of ``min_len``–``max_len`` characters; the URL holds at most ``url_len``."""

    min_len: int = 0
    max_len: int = 200
    url_len: int | None = None

    def parse(self, raw: str, limits: Limits) -> str:
        if not self.min_len <= len(raw) <= self.max_len:
            raise Invalid(f"{self.min_len}–{self.max_len} characters" if self.min_len != self.max_len
                          else f"{self.max_len} character(s)")
        return raw

    def check(self, value: Any, limits: Limits) -> str:
        # what is typed is the widget's business (max_chars; the sidebar text is cut by the page)
        return value if isinstance(value, str) else _get(self.default, limits)

    def encode(self, value: Any) -> str:
        return str(value)[: self.url_len or self.max_len]

    def max_raw(self) -> int:
        return max(MAX_RAW, self.max_len)


@dataclass(frozen=True)
class Multi(Param):
    """Up to ``max_items`` of ``choices``, comma-separated in the URL."""

    choices: Any = ()
    max_items: int = 3

    def parse(self, raw: str, limits: Limits) -> list:
        """The known names of ``raw`` (unknown ones are dropped; :func:`from_link` names them)."""
        options = list(_get(self.choices, limits))
        items = list(dict.fromkeys(s for s in raw.split(",") if s in options))[: self.max_items]
        if not items or len(raw) > self.max_raw():
            raise Invalid(f"1–{self.max_items} of the available names, comma-separated")
        return items

    def check(self, value: Any, limits: Limits) -> list:
        options = list(_get(self.choices, limits))
        kept = [v for v in value if v in options][: self.max_items] if isinstance(value, list) else []
        return kept

    def encode(self, value: Any) -> str:
        return ",".join(value)

    def max_raw(self) -> int:
        return 100 * self.max_items          #: names up to 100 characters each


@dataclass(frozen=True)
class Checked(Param):
    """A value whose meaning one module owns: ``parser(raw, limits)`` returns it or raises Invalid
    saying what it must be (``unit=``: :func:`app_pages.ui.pin.link_pin`)."""

    parser: Any = None
    max_len: int = MAX_RAW

    def parse(self, raw: str, limits: Limits) -> Any:
        return self.parser(raw, limits)

    def max_raw(self) -> int:
        return self.max_len


def _shown(raw: str) -> str:
    """A refused value as the page shows it: short, one line, Markdown-escaped."""
    from app_pages.ui.text import md
    text = raw if len(raw) <= 24 else raw[:20] + f"… ({len(raw):,} characters)"
    return md(text.replace("\n", "⏎"))


def from_link(param: Param, values: list[str], limits: Limits) -> tuple[bool, Any, str | None]:
    """(found, value, complaint) of ``param`` given ``values`` in the link (``st.query_params.get_all``):
    complaint names an ignored value."""
    if not values:
        return False, None, None
    if len(values) > 1:
        return False, None, f"{param.name} (given {len(values)} times)"
    raw = values[0]
    try:
        if len(raw) > param.max_raw():
            raise Invalid("shorter")
        value = param.parse(raw, limits)
    except Invalid as err:
        return False, None, f"{param.name}={_shown(raw)} (must be {err})"
    if isinstance(param, Multi) and param.encode(value) != raw:   # some names dropped
        dropped = [s for s in raw.split(",") if s not in value]
        return True, value, f"{param.name}: {_shown(','.join(dropped) or raw)} (not available)"
    return True, value, None


def use(*names: str, **limits: Any) -> None:
    """Before the widgets of the URL keys ``names``: give each widget a valid value — its own
    (kept within the current range), else this session's copy from an earlier visit, else the
    link's, else the default — and name on the page every value of the link that was ignored."""
    from app_pages.ui.params import PARAMS
    kept = st.session_state.setdefault(_KEPT, {})
    ignored = []
    for name in names:
        param = PARAMS[name]
        if param.widget in st.session_state:
            value = param.check(st.session_state[param.widget], limits)
        elif name in kept:
            value = param.check(kept[name], limits)
        else:
            found, value, complaint = from_link(param, st.query_params.get_all(name), limits)
            if complaint:
                ignored.append(complaint)
                del st.query_params[name]
            if not found:
                value = _get(param.default, limits)
        if param.widget not in st.session_state or _differs(st.session_state[param.widget], value):
            st.session_state[param.widget] = value
        kept[name] = value
    if ignored:
        _note(ignored)


def _note(ignored: list[str]) -> None:
    """Name the ignored values in one line: at the top of the view (the slot :func:`view_params`
    made, so a value read inside a closed tab is named where it is seen), else where we are."""
    notes = st.session_state.get(_NOTES)
    if notes is None:
        st.caption(IGNORED + "; ".join(ignored))
        return
    notes["lines"] += ignored
    notes["slot"].caption(IGNORED + "; ".join(notes["lines"]))
    st.session_state[_NAMED] = {"view": notes["view"], "lines": list(notes["lines"])}


def new_run() -> None:
    """At the start of every script run: forget the previous run's slot for notes."""
    st.session_state.pop(_NOTES, None)


def _differs(a: Any, b: Any) -> bool:
    try:
        return type(a) is not type(b) or bool(a != b)
    except Exception:  # noqa: BLE001
        return True


def sync(*names: str) -> None:
    """After the widgets of ``names``: write their values into the URL (and this session's copy)."""
    from app_pages.ui.params import PARAMS
    kept = st.session_state.setdefault(_KEPT, {})
    for name in names:
        param = PARAMS[name]
        if param.widget in st.session_state:
            value = st.session_state[param.widget]
            kept[name] = value
            url_set(name, param.encode(value))


def url_set(param: str, value: Any) -> None:
    """Write ``value`` into the URL under ``param`` (only when it changed)."""
    text = str(value)
    if st.query_params.get(param) != text:
        st.query_params[param] = text


def url_drop(param: str) -> None:
    """Remove ``param`` from the URL (if it is there)."""
    if param in st.query_params:
        del st.query_params[param]


def view_params(prefix: str) -> None:
    """Drop the URL keys of other views (a copied link then only holds this view's state); at
    the top of the view, a slot for the line that names ignored values (showing the values named
    earlier in this visit of the view)."""
    from app_pages.ui.params import VIEW_PREFIXES   # here: params imports this module

    for key in list(st.query_params.keys()):
        if key.startswith(VIEW_PREFIXES) and not key.startswith(prefix):
            del st.query_params[key]
    named = st.session_state.get(_NAMED)
    lines = list(named["lines"]) if named and named["view"] == prefix else []
    if not lines:
        st.session_state.pop(_NAMED, None)      # another view: its line is not this one's
    slot = st.empty()
    if lines:
        slot.caption(IGNORED + "; ".join(lines))
    st.session_state[_NOTES] = {"slot": slot, "lines": lines, "view": prefix}
