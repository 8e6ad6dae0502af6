"""Figures of one step of the recurrence: the textbook equation term by term (units × terms with
the numbers written in the cells), the one-hot input X_t, and the softmax output."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import DIVERGING, display_char
from .predictions import token_labels
from .states import symmetric_range, unit_labels


def _np(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def terms_figure(terms: dict, units: Sequence[int], *, title: str = "", font_size: int = 12,
                 layer: int = 0, pinned: int | None = None) -> go.Figure:
    """Columns = the equation's terms (in order), rows = ``units``; each cell shows its number.

    ``terms`` is ``views.step_terms`` (name → (h,) vector). Diverging scale centred on 0. The row
    of unit ``pinned`` is labelled "★ L0 h[5]" (its category stays the unit's name).
    """
    names = list(terms)
    units = list(units)
    z = np.stack([_np(terms[n])[units] for n in names], axis=1) if names else np.zeros((len(units), 0))
    m = symmetric_range(z)
    labels = unit_labels(units, layer, "h")
    yaxis = dict(type="category", autorange="reversed", dtick=1, automargin=True)
    if pinned is not None and pinned in units:
        yaxis.update(tickmode="array", tickvals=labels,
                     ticktext=[f"★ {l}" if u == pinned else l for u, l in zip(units, labels)])
    return go.Figure(go.Heatmap(
        z=z, x=names, y=labels, colorscale=DIVERGING, zmid=0.0, zmin=-m, zmax=m,
        text=np.vectorize(lambda v: f"{v:.3f}")(z) if z.size else None, texttemplate="%{text}",
        textfont=dict(size=max(9, font_size - 1)), xgap=2, ygap=1,
        colorbar=dict(thickness=12),
        hovertemplate="%{x}<br>unit %{y}<br>%{z:.5f}<extra></extra>"), layout=dict(
        height=int(min(960, 170 + 24 * len(units))), font=dict(size=font_size),
        margin=dict(l=60, r=20, t=40 if title else 10, b=10), title=dict(text=title),
        xaxis=dict(type="category", side="bottom", tickangle=-30, automargin=True), yaxis=yaxis))


def onehot_figure(x, tokens: Sequence[str], *, font_size: int = 12, title: str = "") -> go.Figure:
    """X_t over the vocabulary: a one-row strip, the character read lit (value 1)."""
    v = _np(x)
    labels = token_labels(tokens)
    return go.Figure(go.Heatmap(z=v[None, :], x=labels, y=["X_t"], colorscale=[[0, "#f7f7f7"], [1, "#d62728"]],
                                zmin=0, zmax=1, showscale=False, xgap=1,
                                hovertemplate="%{x}: %{z:.0f}<extra></extra>"),
                     layout=dict(height=130, font=dict(size=font_size), margin=dict(l=40, r=20, t=40, b=30),
                                 title=dict(text=title), xaxis=dict(type="category", dtick=1,
                                                                    tickfont=dict(size=max(8, font_size - 2)))))


def vector_figure(v, *, labels: Sequence[str] | None = None, title: str = "", font_size: int = 12,
                  layer: int = 0) -> go.Figure:
    """A vector as a one-row heatmap (e.g. the input of a deeper layer, H_t of the layer below)."""
    a = _np(v)
    m = symmetric_range(a)
    labels = list(labels) if labels is not None else unit_labels(range(a.size), layer, "h")
    return go.Figure(go.Heatmap(z=a[None, :], x=labels, y=[""], colorscale=DIVERGING, zmid=0, zmin=-m,
                                zmax=m, showscale=False,
                                hovertemplate="%{x}: %{z:.4f}<extra></extra>"),
                     layout=dict(height=120, font=dict(size=font_size), margin=dict(l=40, r=20, t=40, b=30),
                                 title=dict(text=title), xaxis=dict(type="category")))


def char_strip_label(char: str) -> str:
    return display_char(char)
