"""Figures of the next-character predictions: Karpathy's top-k table under each character, the
probability heatmap (vocabulary × steps) and the distribution at one step."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import PROBABILITY, display_char
from .states import char_axis, window_labels


def _np(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Visible, unique labels of vocabulary entries (a duplicate display gets its id appended)."""
    shown = [display_char(t) for t in tokens]
    seen: dict[str, int] = {}
    for s in shown:
        seen[s] = seen.get(s, 0) + 1
    return [s if seen[s] == 1 else f"{s} #{i}" for i, s in enumerate(shown)]


#: Windows up to this many characters show each guess's probability in its cell.
NUMBERS_MAX = 60


def topk_figure(chars: Sequence[str], top_chars: Sequence[Sequence[str]], top_probs, *, start: int = 0,
                next_chars: Sequence[str | None] | None = None, font_size: int = 12) -> go.Figure:
    """Karpathy's figure: the text along the top, under each character the k most likely next
    characters, shaded by probability. ``top_chars[r][t]`` / ``top_probs[r, t]`` is the r-th guess
    after reading ``chars[t]``. Guesses equal to the true next character are outlined."""
    p = _np(top_probs)
    k, W = p.shape
    x = window_labels(chars, start)
    y = [f"#{r + 1}" for r in range(k)]
    # Each guess with its probability under it (#28: the numbers were only in the hover, which a
    # class cannot see); over a wide window the cells are too narrow for them.
    numbers = W <= NUMBERS_MAX
    text = [[display_char(top_chars[r][t]) + (f"<br>{p[r, t]:.2f}" if numbers else "") for t in range(W)]
            for r in range(k)]
    guess = [[display_char(top_chars[r][t]) for t in range(W)] for r in range(k)]
    traces = [go.Heatmap(
        z=p, x=x, y=y, text=text, customdata=guess, texttemplate="%{text}", textfont=dict(size=font_size),
        colorscale=PROBABILITY, zmin=0.0, zmax=1.0, xgap=1, ygap=1,
        colorbar=dict(thickness=12, title=dict(text="P")),
        hovertemplate="after %{x}<br>guess %{y}: %{customdata}<br>P = %{z:.4f}<extra></extra>")]
    if next_chars is not None:
        xs, ys = [], []
        for t in range(W):
            nc = next_chars[t]
            for r in range(k):
                if nc is not None and top_chars[r][t] == nc:
                    xs.append(x[t])
                    ys.append(y[r])
        traces.append(go.Scatter(x=xs, y=ys, mode="markers", hoverinfo="skip", name="true next char",
                                 marker=dict(symbol="square-open", size=max(10, font_size + 6),
                                             color="#d62728", line=dict(width=2))))
    return go.Figure(traces, layout=dict(
        height=120 + k * (int(2.6 * font_size) + 8 if numbers else 28), font=dict(size=font_size), showlegend=False,
        margin=dict(l=40, r=20, t=30 + 2 * font_size, b=10),   # room for the characters on top
        title=dict(text="Top guesses for the next character (red box: the character that came next)"),
        xaxis=dict(char_axis(chars, x, font_size), side="top"),
        yaxis=dict(type="category", autorange="reversed")))


def probability_heatmap(probs, tokens: Sequence[str], chars: Sequence[str], *, start: int = 0,
                        log: bool = False, next_ids: Sequence[int | None] | None = None,
                        font_size: int = 12) -> go.Figure:
    """P(next char = v) as a heatmap: rows = vocabulary, columns = steps of the window.
    ``probs`` is (W, |V|). With ``log`` the colour is log10 P (zmin −4). The true next character
    of each step is marked with a dot."""
    p = _np(probs)
    W, V = p.shape
    z = np.ascontiguousarray(p.T)
    x = window_labels(chars, start)
    y = token_labels(tokens)
    if log:
        z = np.log10(np.clip(z, 1e-12, 1.0)).astype(np.float32)
        kw = dict(zmin=-4.0, zmax=0.0, colorbar=dict(thickness=12, title=dict(text="log₁₀ P")),
                  hovertemplate="after %{x}<br>next %{y}<br>log₁₀ P = %{z:.3f}<extra></extra>")
    else:
        kw = dict(zmin=0.0, zmax=1.0, colorbar=dict(thickness=12, title=dict(text="P")),
                  hovertemplate="after %{x}<br>next %{y}<br>P = %{z:.4f}<extra></extra>")
    traces = [go.Heatmap(z=z, x=x, y=y, colorscale=PROBABILITY, **kw)]
    if next_ids is not None:
        xs = [x[t] for t in range(W) if next_ids[t] is not None]
        ys = [y[int(next_ids[t])] for t in range(W) if next_ids[t] is not None]
        traces.append(go.Scatter(x=xs, y=ys, mode="markers", hoverinfo="skip", name="true next char",
                                 marker=dict(symbol="circle-open", size=7, color="#ff4136", line=dict(width=1.5))))
    xaxis = dict(char_axis(chars, x, font_size), title=dict(text="after reading"))
    return go.Figure(traces, layout=dict(
        height=int(min(900, 140 + 13 * V)), font=dict(size=font_size), showlegend=False,
        margin=dict(l=60, r=20, t=30, b=60), xaxis=xaxis,
        yaxis=dict(type="category", autorange="reversed", dtick=1,
                   tickfont=dict(size=max(8, font_size - 3)), title=dict(text="next")),
        title=dict(text="P(next character) at every step (circles: what came next)")))


def step_distribution(probs, tokens: Sequence[str], *, next_id: int | None = None, top: int = 20,
                      title: str = "", font_size: int = 12) -> go.Figure:
    """Bar chart of the distribution at one step, the ``top`` most likely characters, the true next
    character highlighted (and added if it is not among them)."""
    p = _np(probs)
    order = list(np.argsort(-p, kind="stable")[:top])
    if next_id is not None and next_id not in order:
        order.append(int(next_id))
    labels = token_labels(tokens)
    colors = ["#d62728" if next_id is not None and int(i) == int(next_id) else "#1f77b4" for i in order]
    return go.Figure(go.Bar(x=[labels[i] for i in order], y=p[order], marker_color=colors,
                            hovertemplate="next %{x}<br>P = %{y:.4f}<extra></extra>"),
                     layout=dict(height=300, font=dict(size=font_size), margin=dict(l=50, r=20, t=40, b=40),
                                 title=dict(text=title), yaxis=dict(title=dict(text="P"), rangemode="tozero"),
                                 xaxis=dict(type="category", title=None)))
