"""Figures of hidden states and gates: units × characters heatmaps, the whole-text overview strip,
and the gate saturation summary. Plain data in (numpy / torch / lists), ``go.Figure`` out.

Speed: a heatmap cell costs the browser time, so the page sends one full-resolution *window* of the
text (see ``rnnviz.views.max_window``) and an overview of the whole text downsampled to a few
hundred columns; z values go out as float32 arrays (Plotly sends them base64-encoded).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..units.names import unit_name
from .common import DIVERGING, SEQUENTIAL, display_char
from .text import _lut

#: Show every character label on the x axis up to this many columns.
ALL_LABELS_MAX = 64


def _np(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def window_labels(chars: Sequence[str], start: int = 0) -> list[str]:
    """Unique x labels ``"<step>:<char>"`` for chars starting at step ``start`` (see step_labels)."""
    return [f"{start + t}:{display_char(c)}" for t, c in enumerate(chars)]


def char_axis(chars: Sequence[str], x: Sequence[str], font_size: int = 12) -> dict:
    """A category x axis over steps: up to ALL_LABELS_MAX columns every tick shows just the
    character (the axis reads as the text; categories stay unique "step:char"); beyond that,
    rotated "step:char" labels that Plotly thins out."""
    if len(chars) <= ALL_LABELS_MAX:
        return dict(type="category", tickmode="array", tickvals=list(x),
                    ticktext=[display_char(c) for c in chars], tickangle=0,
                    tickfont=dict(size=font_size + 1, family="monospace"))
    return dict(type="category", tickangle=-90, tickfont=dict(size=max(8, font_size - 2)))


def unit_labels(units: Sequence[int], layer: int = 0, kind: str = "h") -> list[str]:
    """Each unit's one name on every view ("L0 h[203]", :func:`rnnviz.units.names.unit_name`)."""
    return [unit_name(layer, kind, u) for u in units]


#: At most about this many unit ids on a heatmap's y axis (more would overlap).
UNIT_TICKS = 40


def unit_axis(units: Sequence[int], named: dict[int, str] | None = None,
              font_size: int = 12, layer: int = 0, kind: str = "h") -> dict:
    """A category y axis over units (top to bottom in ``units`` order) labelled with unit ids:
    every unit up to UNIT_TICKS rows, else every k-th; units in ``named`` (unit → what it tracks)
    always get a bold "u30 · paren depth" tick, and plain ticks too close to one are left out."""
    units = list(units)
    named = {u: n for u, n in (named or {}).items() if u in units}
    rows = len(units)
    step = max(1, -(-rows // UNIT_TICKS))
    pos = {u: i for i, u in enumerate(units)}
    near = {i for u in named for i in range(pos[u] - step + 1, pos[u] + step)}
    shown = sorted({i for i in range(0, rows, step) if i not in near} | {pos[u] for u in named})
    label = dict(zip(units, unit_labels(units, layer, kind)))
    text = [f"<b>{label[units[i]]} · {named[units[i]]}</b>" if units[i] in named else label[units[i]]
            for i in shown]
    return dict(type="category", autorange="reversed", title=dict(text="unit"), automargin=True,
                tickmode="array", tickvals=[label[units[i]] for i in shown], ticktext=text,
                tickfont=dict(size=max(8, font_size - 3)))


def symmetric_range(values) -> float:
    """max |v| over the finite values (at least 1e-6): the half-width of a colour range centred on 0."""
    a = np.abs(_np(values))
    a = a[np.isfinite(a)]
    m = float(a.max()) if a.size else 0.0
    return max(m, 1e-6)


def state_heatmap(values, chars: Sequence[str], *, start: int = 0, units: Sequence[int] | None = None,
                  title: str = "", name: str = "H", zmax: float | None = None, gate: bool = False,
                  height: int | None = None, font_size: int = 12,
                  named: dict[int, str] | None = None, layer: int = 0, kind: str = "h") -> go.Figure:
    """Heatmap of a (W, h) window of a per-unit tensor: rows = units (in ``units`` order, top to
    bottom), columns = the W characters ``chars`` read at steps start … start + W − 1.

    States use the diverging scale centred on 0 (zmid = 0, range ±zmax); gates (``gate=True``) the
    sequential scale over [0, 1]. Hover: step:char, unit, value. The y axis names unit ids, and
    the units in ``named`` (unit → what it tracks, e.g. from ``rnnviz.units.names``) in bold.
    """
    a = _np(values)
    if a.ndim != 2 or a.shape[0] != len(chars):
        raise ValueError(f"values must be (len(chars), h); got {a.shape} for {len(chars)} chars")
    units = list(range(a.shape[1])) if units is None else list(units)
    z = np.ascontiguousarray(a[:, units].T)  # (len(units), W)
    x = window_labels(chars, start)
    y = unit_labels(units, layer, kind)
    hover = "step:char %{x}<br>unit %{y}<br>" + name + " = %{z:.4f}<extra></extra>"
    if gate:
        trace = go.Heatmap(z=z, x=x, y=y, colorscale=SEQUENTIAL, zmin=0.0, zmax=1.0,
                           hovertemplate=hover, colorbar=dict(thickness=12, title=dict(text=name)))
    else:
        m = zmax if zmax is not None else symmetric_range(a)
        trace = go.Heatmap(z=z, x=x, y=y, colorscale=DIVERGING, zmid=0.0, zmin=-m, zmax=m,
                           hovertemplate=hover, colorbar=dict(thickness=12, title=dict(text=name)))
    rows = len(units)
    if height is None:  # ~18 px per unit for small layers (1.4 × the font: lecture mode's larger
        # labels get taller rows), ~600 px of rows for large ones
        per_row = max(18.0, 1.4 * font_size)
        height = int(120 + rows * max(2.3, min(per_row, max(600.0, 32 * per_row) / max(1, rows))))
    xaxis = char_axis(chars, x, font_size)
    xaxis["title"] = dict(text="character read at step t" + (" (hover for the step)" if len(chars) <= ALL_LABELS_MAX else ""))
    yaxis = unit_axis(units, named, font_size, layer, kind)
    return go.Figure(trace, layout=dict(title=dict(text=title), height=height, xaxis=xaxis, yaxis=yaxis,
                                        margin=dict(l=60, r=20, t=40 if title else 10, b=60),
                                        font=dict(size=font_size)))


def colormap_rgb(values, vmin: float, vmax: float, scale: str) -> np.ndarray:
    """(rows, cols) values → (rows, cols, 3) uint8 colours of ``scale`` over [vmin, vmax]."""
    a = _np(values)
    lut = np.asarray(_lut(scale), dtype=np.uint8)
    span = (vmax - vmin) or 1.0
    with np.errstate(over="ignore", invalid="ignore"):   # an overflowed model's ±inf: clipped below
        x = np.nan_to_num((a - vmin) / span, nan=0.5)
        idx = np.clip(np.rint(x * (len(lut) - 1)), 0, len(lut) - 1).astype(np.intp)
    return lut[idx]


#: The last few PNGs made (digest of the pixels → data URI): a run that draws the same overview
#: again (a rerun, the window moved) does not compress it again (~20 ms per 256 × 400 image).
_PNG_MEMO: OrderedDict[bytes, str] = OrderedDict()
_PNG_MEMO_SIZE = 16
_PNG_LOCK = threading.Lock()


def png_data_uri(rgb: np.ndarray) -> str:
    """A (rows, cols, 3) uint8 array as a ``data:image/png;base64,…`` URI (plain zlib, no PIL)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    key = hashlib.blake2b(rgb.data, digest_size=16, person=struct.pack(">II", h, w)).digest()
    with _PNG_LOCK:
        if key in _PNG_MEMO:
            _PNG_MEMO.move_to_end(key)
            return _PNG_MEMO[key]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    with _PNG_LOCK:
        _PNG_MEMO[key] = uri
        while len(_PNG_MEMO) > _PNG_MEMO_SIZE:
            _PNG_MEMO.popitem(last=False)
    return uri


def overview_heatmap(values, edges: Sequence[int], *, units: Sequence[int], window: tuple[int, int],
                     zmax: float | None = None, gate: bool = False, name: str = "H",
                     font_size: int = 12, height: int = 200) -> go.Figure:
    """The whole text at a glance: (n, h) bucket means over steps ``edges`` (from
    ``views.downsample_steps``), rows = ``units``, drawn as one PNG image (cheap for the browser
    however long the text); the current window is outlined."""
    a = _np(values)
    units = list(units)
    z = a[:, units].T  # (rows, n)
    if gate:
        rgb = colormap_rgb(z, 0.0, 1.0, SEQUENTIAL)
    else:
        m = zmax if zmax is not None else symmetric_range(a)
        rgb = colormap_rgb(z, -m, m, DIVERGING)
    T = edges[-1]
    n = len(edges) - 1
    dx = T / n
    lo, hi = window
    per = max(edges[i + 1] - edges[i] for i in range(n)) if n else 1
    return go.Figure(go.Image(source=png_data_uri(rgb), x0=dx / 2 - 0.5, dx=dx, y0=0, dy=1,
                              hovertemplate="≈ step %{x:.0f}<extra></extra>"), layout=dict(
        shapes=[dict(type="rect", x0=lo - 0.5, x1=hi - 0.5, y0=-0.5, y1=len(units) - 0.5,
                     line=dict(color="black", width=2), fillcolor="rgba(0,0,0,0)")],
        height=height, font=dict(size=font_size), margin=dict(l=60, r=20, t=30, b=30),
        title=dict(text=f"Whole text: {T:,} chars" + (f", ≤ {per} per column" if per > 1 else "")
                        + "; box = the window below",
                   font=dict(size=font_size)),
        xaxis=dict(range=[-0.5, T - 0.5], title=None, showgrid=False),
        yaxis=dict(range=[len(units) - 0.5, -0.5], showticklabels=False, scaleanchor=False,
                   showgrid=False)))


def saturation_figure(rows: Sequence[dict], unit_low: dict[str, np.ndarray],
                      unit_high: dict[str, np.ndarray], *, font_size: int = 12) -> go.Figure:
    """Per gate, the fraction of time each unit is < 0.1 (closed) or > 0.9 (open), stacked, units
    sorted by how saturated they are. ``rows``: ``views.saturation_table``; unit_*: gate → (h,)."""
    gates = [r["gate"] for r in rows]
    bars = []
    for k, g in enumerate(gates):
        lo, hi = _np(unit_low[g]), _np(unit_high[g])
        order = np.argsort(-(lo + hi), kind="stable")
        x = [f"{g}:u{u}" for u in order]
        bars.append(go.Bar(x=x, y=lo[order], name=f"{g} < 0.1", marker_color="#2166ac", legendgroup=g,
                           xaxis=f"x{k + 1}" if k else "x", yaxis=f"y{k + 1}" if k else "y",
                           hovertemplate="%{x}: closed %{y:.1%} of the time<extra></extra>"))
        bars.append(go.Bar(x=x, y=hi[order], name=f"{g} > 0.9", marker_color="#b2182b", legendgroup=g,
                           xaxis=f"x{k + 1}" if k else "x", yaxis=f"y{k + 1}" if k else "y",
                           hovertemplate="%{x}: open %{y:.1%} of the time<extra></extra>"))
    n = max(1, len(gates))
    layout = dict(barmode="stack", height=160 + 140 * n, font=dict(size=font_size),
                  margin=dict(l=60, r=20, t=40, b=30), showlegend=False,
                  title=dict(text="Gate saturation per unit (blue: < 0.1, red: > 0.9)"))
    gap = 0.08
    h = (1 - gap * (n - 1)) / n
    for k, g in enumerate(gates):
        top = 1 - k * (h + gap)
        sx = "" if k == 0 else str(k + 1)
        layout[f"xaxis{sx}"] = dict(showticklabels=False, anchor=f"y{sx}", title=None)
        layout[f"yaxis{sx}"] = dict(domain=[max(0, top - h), top], range=[0, 1], tickformat=".0%",
                                    title=dict(text=f"gate {g}"), anchor=f"x{sx}")
    return go.Figure(bars, layout=layout)


#: Dictionary features' scale: white (off) to dark red, the positive half of the states' scale (an
#: activation is never negative), as the coloured text shows a feature.
FEATURE_SCALE = "Reds"


def feature_heatmap(values, chars: Sequence[str], features: Sequence[int], *, layer: int, state: str,
                    start: int = 0, named: dict[int, str] | None = None, title: str = "",
                    font_size: int = 12) -> go.Figure:
    """Heatmap of dictionary features (:mod:`rnnviz.units.sae`): ``values`` (W, F) the activations
    of every feature on the W characters ``chars`` from step ``start``; rows = ``features`` (top to
    bottom), named "L0 feat[17]" (:func:`rnnviz.units.basis.feature_name`), those in ``named``
    (feature → what it tracks) in bold with it. FEATURE_SCALE from 0 (white, off) to the largest
    value shown."""
    from ..units.basis import feature_name

    a = _np(values)
    if a.ndim != 2 or a.shape[0] != len(chars):
        raise ValueError(f"values must be (len(chars), F); got {a.shape} for {len(chars)} chars")
    rows = list(features)
    z = np.ascontiguousarray(a[:, rows].T)
    labels = [feature_name(layer, state, f) for f in rows]
    named = named or {}
    m = max(float(z.max()) if z.size else 0.0, 1e-6)
    x = window_labels(chars, start)
    heat = go.Heatmap(z=z, x=x, y=labels, colorscale=FEATURE_SCALE, zmin=0.0, zmax=m,
                      hovertemplate="step:char %{x}<br>feature %{y}<br>a = %{z:.4f}<extra></extra>",
                      colorbar=dict(thickness=12, title=dict(text="a_f")))
    per_row = max(22.0, 1.6 * font_size)
    xaxis = char_axis(chars, x, font_size)
    xaxis["title"] = dict(text="character read at step t")
    yaxis = dict(type="category", autorange="reversed", title=dict(text="feature"), automargin=True,
                 tickmode="array", tickvals=labels, tickfont=dict(size=font_size),
                 ticktext=[f"<b>{lab} · {named[f]}</b>" if f in named else lab for f, lab in zip(rows, labels)])
    return go.Figure(heat, layout=dict(title=dict(text=title), height=int(130 + per_row * len(rows)), xaxis=xaxis,
                                       yaxis=yaxis, margin=dict(l=60, r=20, t=40 if title else 10, b=60),
                                       font=dict(size=font_size)))
