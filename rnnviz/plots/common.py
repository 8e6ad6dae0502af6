"""Shared pieces of every figure: visible character labels, the diverging scale, layout defaults."""

from __future__ import annotations

import copy
import functools
import html
import math
import textwrap

import numpy as np

#: Symbols that make invisible characters visible on axes and in coloured text.
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}

#: One meaning per colour scale across the app (issue 16, item 8).
#: Diverging scale centred on 0 (blue negative, white zero, red positive): states, terms.
DIVERGING = "RdBu_r"
#: Sequential scale for probabilities, gate openings and magnitudes: dark = small / unlikely,
#: yellow = large / likely. Yellow never means "surprising".
SEQUENTIAL = "Viridis"
#: Probabilities (Predictions, Generate, Lesson): the sequential scale, yellow = likely.
PROBABILITY = SEQUENTIAL
#: Surprisal −log P: white = expected, dark red = surprising (its own scale, so it never reads as
#: the probability scale with the opposite meaning).
SURPRISAL = "Reds"


#: At most this many labelled ticks on a log axis, whatever its range.
MAX_LOG_TICKS = 8
#: Decade steps between labelled powers of ten (10⁰, 10⁵, 10¹⁰ … reads better than 10⁰, 10⁷, 10¹⁴).
_NICE_STEPS = (1, 2, 3, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10 ** 9)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _tick_text(mantissa: int, exponent: int) -> str:
    """1, 20, 0.005 between 10⁻³ and 10³; 10⁻⁷ / 2×10⁻⁷ outside (never Plotly's 1m / 1µ / 1n)."""
    if -3 <= exponent <= 3:
        return f"{mantissa * 10.0 ** exponent:.{max(0, -exponent)}f}"
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == 1 else f"{mantissa}×{power}"


def log_ticks(lo10: float, hi10: float, max_ticks: int = MAX_LOG_TICKS) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis whose data spans 10**lo10 … 10**hi10.

    Powers of ten, every ``step``-th decade (a multiple of ``step``) so that at most ``max_ticks``
    are labelled; over at most two decades also 2× and 5× (thinned the same way) so a narrow range
    still has two or more labels. Every label is what the value is: no minor "2, 5" ambiguity.
    """
    if not (math.isfinite(lo10) and math.isfinite(hi10)):
        return [], []
    lo10, hi10 = max(min(lo10, hi10), -307.0), min(max(lo10, hi10), 307.0)   # float64's range
    a, b = math.floor(lo10), math.ceil(hi10)
    if hi10 - lo10 <= 2:
        mantissas = (1, 2, 3, 5) if hi10 - lo10 < 1 else (1, 2, 5)
        cands = [(m, e) for e in range(a, b + 1) for m in mantissas]
        cands = [(m, e) for m, e in cands if lo10 - 1e-9 <= e + math.log10(m) <= hi10 + 1e-9] \
            or [(1, round((lo10 + hi10) / 2))]
        cands = cands[:: -(-len(cands) // max_ticks)]
    else:
        step = next(s for s in _NICE_STEPS if b // s - (-(-a // s)) + 1 <= max_ticks)
        cands = [(1, e) for e in range(-(-a // step) * step, b + 1, step)]
    return [m * 10.0 ** e for m, e in cands], [_tick_text(m, e) for m, e in cands]


def log_range(*arrays) -> tuple[float, float] | None:
    """log₁₀ of the smallest and largest positive finite value in ``arrays`` (None / NaN / ≤ 0 skipped)."""
    vals = []
    for a in arrays:
        if a is None:
            continue
        v = np.asarray(a, dtype=float).ravel()
        vals.append(v[np.isfinite(v) & (v > 0)])
    v = np.concatenate(vals) if vals else np.array([])
    return (float(np.log10(v.min())), float(np.log10(v.max()))) if v.size else None


def log_axis(*arrays, log10_range: tuple[float, float] | None = None, **extra) -> dict:
    """The one style of every log axis: labelled ticks at powers of ten (:func:`log_ticks`), at most
    :data:`MAX_LOG_TICKS` whatever the range. The range is ``log10_range`` (log₁₀ min, max) or
    found in the data ``arrays`` (what the chart plots, plus any line drawn on it). ``extra``
    (title, range …) is merged in: ``fig.update_yaxes(**log_axis(y, title="norm"))``."""
    rng = log10_range if log10_range is not None else log_range(*arrays)
    axis = dict(type="log", exponentformat="power", **extra)
    if rng is not None:
        vals, text = log_ticks(*rng)
        if vals:
            axis.update(tickmode="array", tickvals=vals, ticktext=text)
    return axis


def display_char(ch: str) -> str:
    """A visible label for a character: space → ␣, newline → ⏎, control chars → U+XXXX, lone surrogate → U+FFFD."""
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    if len(ch) == 1 and (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
        return f"U+{ord(ch):04X}"
    if len(ch) == 1 and 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate: JSON (Plotly) refuses it
        return "\ufffd"
    if ch == "<unk>":
        return "⟨unk⟩"
    return ch


def step_labels(chars: list[str]) -> list[str]:
    """Unique x-axis labels, one per step, so repeated characters stay separate columns.

    Plotly merges equal category labels; a zero-width-free suffix of the step index keeps them
    apart: ``"t␣3"`` style is avoided in favour of ``"3:t"`` (index first, readable when rotated).
    """
    return [f"{t}:{display_char(c)}" for t, c in enumerate(chars)]


def escape(text: str) -> str:
    """HTML-escape user text for any place that renders HTML (hover labels, coloured text)."""
    return html.escape(text, quote=True)


def wrap_title(title: str, width: int) -> str:
    """Wrap a Plotly title so no line is longer than ``width`` characters: each ``<br>``-separated
    line breaks at spaces; a whole-line ``<sup>…</sup>`` subtitle (drawn at ~70 % size) gets
    ``width / 0.7``; ``a = b`` is never split. Plotly never wraps a title itself: a long one is cut
    at the chart's edge."""
    lines = []
    for line in title.split("<br>"):
        sup = line.startswith("<sup>") and line.endswith("</sup>")
        body = line[len("<sup>"):-len("</sup>")] if sup else line
        body = body.replace(" = ", "\u00a0=\u00a0")      # "s = 10" stays on one line
        parts = textwrap.wrap(body, int(width / 0.7) if sup else width, break_long_words=False,
                              break_on_hyphens=False) or [body]
        parts = [p.replace("\u00a0=\u00a0", " = ") for p in parts]
        lines += [f"<sup>{p}</sup>" for p in parts] if sup else parts
    return "<br>".join(lines)


def merge(target: dict, **update) -> dict:
    """``fig.update_layout(**update)`` on a plain layout dict: nested dicts are merged into what is
    there, anything else replaces it. The nested dicts it changes are copies (whatever else holds
    them, e.g. a cached figure, is left as it is); ``target`` itself is edited. Returns it.

    Figures are built in one ``go.Figure(traces, layout=dict(...))`` call, the layout assembled as a
    plain dict with this: Plotly's update_layout / update_xaxes / add_trace (path parsing,
    validation, change callbacks) cost a multiple of the constructor's one validation pass."""
    for k, v in update.items():
        if isinstance(v, dict):
            target[k] = merge(dict(target[k]) if isinstance(target.get(k), dict) else {}, **v)
        else:
            target[k] = v
    return target


def subplot_grid(row_heights: tuple[float, ...], spacing: float, titles: tuple[str, ...] = ()) -> dict:
    """The layout ``make_subplots`` makes for one column of rows sharing x (each row's axes, domains
    and anchors; the rows' titles), as a fresh dict for ``go.Figure(traces, layout=…)`` (row r's
    traces set ``xaxis="x<r>"``, ``yaxis="y<r>"``, no suffix for row 1). Made once per shape:
    make_subplots itself costs as much as the rest of a figure."""
    return copy.deepcopy(_grid_layout(tuple(row_heights), spacing, tuple(titles)))


@functools.lru_cache(maxsize=64)
def _grid_layout(row_heights: tuple[float, ...], spacing: float, titles: tuple[str, ...]) -> dict:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(row_heights), cols=1, shared_xaxes=True, vertical_spacing=spacing,
                        row_heights=list(row_heights), subplot_titles=list(titles) or None)
    layout = fig.to_dict()["layout"]
    layout.pop("template", None)        # the figure built on it gets the default template itself
    return layout


def hline(y: float, text: str, color: str) -> dict:
    """Layout parts (``shapes``, ``annotations``) of a dashed horizontal line at ``y`` across the
    plot, labelled ``text`` at its right end: what ``fig.add_hline(y, line=dict(color=color,
    dash="dash"), annotation_text=text)`` draws. Merge into a layout (several: add the lists)."""
    return dict(shapes=[dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=y, y1=y,
                             line=dict(color=color, dash="dash"))],
                annotations=[dict(text=text, showarrow=False, xref="x domain", x=1, xanchor="right",
                                  yref="y", y=y, yanchor="bottom")])
