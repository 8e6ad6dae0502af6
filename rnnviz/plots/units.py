"""Figures and HTML for the Units view: ranked units, a unit as coloured text, hypothesis matches,
counterfactual curves, ablation deltas and the PCA trajectory.

Pure builders (Plotly figures, HTML strings); no Streamlit. Every piece of user or corpus text that
ends up in HTML goes through :func:`rnnviz.plots.common.escape` (directly, or inside
:func:`rnnviz.plots.text.colored_text_html`); Plotly text is set as data, never as markup.
"""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..names import parse_act_name
from ..units import Ablation, Counterfactual, FinderResult, Match, Projection
from .common import DIVERGING, display_char, escape, log_axis, step_labels
from .text import colored_text_html

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _layout(fig: go.Figure, title: str, height: int, font_size: int = 12) -> go.Figure:
    fig.update_layout(title=dict(text=escape(title)), height=height, template="plotly_white",
                      font=dict(size=font_size), margin=dict(l=60, r=20, t=55, b=50))
    return fig


def _visible(text: str) -> str:
    return "".join("⏎" if c == "\n" else ("⇥" if c == "\t" else c) for c in text)


# --------------------------------------------------------------------------- unit finder
def ranked_units_rows(result: FinderResult) -> list[dict]:
    """One dict per top unit (rank, unit, r, AUC, direction) for a table."""
    return [{"rank": k + 1, "unit": s.unit.label, "r": round(s.r, 4), "AUC": round(s.auc, 4),
             "on when": "feature on" if s.auc >= 0.5 else "feature off"}
            for k, s in enumerate(result.top)]


def ranked_units_figure(result: FinderResult, font_size: int = 12) -> go.Figure:
    """Horizontal bars of the top units: AUC (or r) per unit, best at the top."""
    top = result.top
    labels = [s.unit.label for s in top][::-1]
    if result.by == "auc":
        x = [s.auc for s in top][::-1]
        base, axis = 0.5, "AUC (0.5 = chance; < 0.5: the unit is low on the feature)"
        xr = [0, 1]
    else:
        x = [s.r for s in top][::-1]
        base, axis = 0.0, "Pearson r"
        xr = [-1, 1]
    hover = [f"{s.unit.label}<br>r = {s.r:+.4f}<br>AUC = {s.auc:.4f}" for s in top][::-1]
    fig = go.Figure(go.Bar(x=[v - base for v in x], base=base, y=labels, orientation="h",
                           marker_color=["#d62728" if v >= base else "#1f77b4" for v in x],
                           hovertext=hover, hoverinfo="text"))
    fig.update_xaxes(title=axis, range=xr)
    fig.update_yaxes(type="category")
    title = (f"Units that track {result.feature} (label: {result.label_rule}; "
             f"{result.n_positive:,} of {result.n:,} positive)")
    return _layout(fig, title, max(260, 24 * len(top) + 120), font_size)


def unit_text_html(chars: Sequence[str], values: Sequence[float], label: str, *,
                   vmax: float | None = None, font_size: int = 15, caption: str = "") -> str:
    """``chars`` coloured by one unit's activations (blue negative, white 0, red positive)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    m = vmax if vmax is not None else (max(finite) if finite else 1.0)
    m = m if m > 0 else 1.0
    tips = [f"step {t}: {display_char(c)!r}  {label} = {v:+.4f}" for t, (c, v) in enumerate(zip(chars, values))]
    return colored_text_html(list(chars), list(values), vmin=-m, vmax=m, scale=DIVERGING,
                             tooltips=tips, font_size=font_size,
                             caption=caption or f"{label}: −{m:.3g} (blue) … 0 (white) … +{m:.3g} (red)")


# --------------------------------------------------------------------------- hypothesis
def span_text_html(chars: Sequence[str], a: int, b: int, around: tuple[int, int] | None = None,
                   font_size: int = 15) -> str:
    """The text with the selected span [a, b) highlighted (and the "around" window shaded)."""
    values: list[float | None] = [None] * len(chars)
    if around is not None:
        for t in range(max(0, around[0]), min(len(chars), around[1])):
            values[t] = 0.25
    for t in range(max(0, a), min(len(chars), b)):
        values[t] = 1.0
    tips = [f"step {t}: {display_char(c)!r}" for t, c in enumerate(chars)]
    return colored_text_html(list(chars), values, vmin=0.0, vmax=1.0, scale="Oranges", tooltips=tips,
                             font_size=font_size,
                             caption="Selected span (orange); compared against the lightly shaded "
                                     "characters around it")


def matches_html(matches: Sequence[Match], font_size: int = 14) -> str:
    """A list of matches: grey context, the matched run highlighted, positions and fraction on."""
    if not matches:
        return '<div style="color:#666">No matches.</div>'
    rows = []
    for m in matches:
        rows.append(
            f'<div style="font-family:ui-monospace,Menlo,Consolas,monospace;font-size:{int(font_size)}px;'
            f'white-space:pre;overflow-x:auto;padding:2px 0">'
            f'<span style="color:#888;font-size:11px">[{m.start:>6}, {m.end:>6}) {m.fraction:4.0%} </span>'
            f'<span style="color:#777">{escape(_visible(m.left))}</span>'
            f'<span style="background:#fdd49e;color:#000">{escape(_visible(m.text))}</span>'
            f'<span style="color:#777">{escape(_visible(m.right))}</span></div>')
    return "<div>" + "".join(rows) + "</div>"


# --------------------------------------------------------------------------- counterfactual
def _positive_or_none(values) -> list[float | None]:
    return [float(v) if float(v) > 0 else None for v in values]


def counterfactual_figure(cf: Counterfactual, font_size: int = 12) -> go.Figure:
    """‖ΔH‖ (and ‖ΔC‖) per layer and KL(P ‖ P′) vs steps after the edit, both on log axes.

    Exact zeros cannot sit on a log axis: they are left out (gaps), which the subtitle says.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("state difference ‖H_t − H′_t‖₂", "KL(P_t ‖ P′_t) of the next character (nats)"))
    x = cf.steps.tolist()
    suffix = cf.original[cf.end:]
    labels = [("(edit)" if j == 0 else escape(display_char(suffix[j - 1]))) for j in x]
    for k, (name, v) in enumerate(cf.delta.items()):
        kind = "C" if name.endswith(".c") else "H"
        layer = parse_act_name(name)[0]
        fig.add_trace(go.Scatter(x=x, y=_positive_or_none(v), mode="lines+markers", name=f"‖Δ{kind}‖ layer {layer}",
                                 line=dict(color=_COLORS[k % len(_COLORS)], dash="dot" if kind == "C" else "solid"),
                                 marker=dict(size=4), customdata=labels,
                                 hovertemplate="j=%{x} after reading %{customdata}<br>%{y:.3e}<extra></extra>"),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=_positive_or_none(cf.kl), mode="lines+markers", name="KL",
                             line=dict(color="#444"), marker=dict(size=4), customdata=labels,
                             hovertemplate="j=%{x} after reading %{customdata}<br>KL=%{y:.3e}<extra></extra>"),
                  row=2, col=1)
    fig.update_yaxes(**log_axis(*cf.delta.values()), row=1, col=1)
    fig.update_yaxes(**log_axis(cf.kl), row=2, col=1)
    fig.update_xaxes(title="steps j after the edit (0 = just after the edited characters)", row=2, col=1)
    title = (f"{cf.original[cf.start:cf.end]!r} → {cf.replacement!r} at step {cf.start} "
             "(exact zeros are not drawn on log axes)")
    return _layout(fig, title, 560, font_size)


# --------------------------------------------------------------------------- ablation
def ablation_figure(ab: Ablation, start: int = 0, width: int = 200, font_size: int = 12) -> go.Figure:
    """Per step: surprisal with and without the forced unit, its change, and KL(P ‖ P_ablated)."""
    T = len(ab.chars)
    lo, hi = max(0, start), min(T, start + width)
    labels = [escape(s) for s in step_labels(ab.chars)[lo:hi]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("Δ surprisal of the actual next character (nats): ablated − base",
                                        "KL(P ‖ P_ablated) of the next-character distribution"))
    d = ab.delta_surprisal.tolist()
    ys = [d[t] if t < len(d) else None for t in range(lo, hi)]
    fig.add_trace(go.Bar(x=labels, y=ys, name="Δ surprisal",
                         marker_color=["#d62728" if (v or 0) > 0 else "#1f77b4" for v in ys],
                         hovertemplate="%{x}<br>Δ = %{y:+.4f} nats<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=labels, y=ab.kl[lo:hi].tolist(), mode="lines+markers", name="KL",
                             line=dict(color="#444"), marker=dict(size=4),
                             hovertemplate="%{x}<br>KL = %{y:.3e}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(type="category", tickangle=-60, row=2, col=1)
    fig.update_xaxes(type="category", row=1, col=1)
    how = "zeroed" if ab.mode == "zero" else f"clamped to {ab.value:g}"
    title = f"{ab.unit.label} {how}: mean Δ surprisal {ab.mean_delta:+.4f} nats/char"
    fig.update_layout(showlegend=False)
    return _layout(fig, title, 520, font_size)


def ablation_rows(ab: Ablation, steps: Sequence[int], k: int = 3) -> list[dict]:
    """Rows for a table: the top-k predictions before and after, at the given steps."""
    def fmt(pairs):
        return ", ".join(f"{display_char(c)} {p:.2f}" for c, p in pairs)

    rows = []
    for t in steps:
        nxt = ab.chars[t + 1] if t + 1 < len(ab.chars) else None
        rows.append({"step": t, "read": display_char(ab.chars[t]),
                     "next": display_char(nxt) if nxt is not None else "—",
                     "base top": fmt(ab.top(t, k)), "ablated top": fmt(ab.top(t, k, ablated=True)),
                     "Δ surprisal": round(float(ab.delta_surprisal[t]), 4) if t < len(ab.delta_surprisal) else None,
                     "KL": float(ab.kl[t])})
    return rows


# --------------------------------------------------------------------------- projection
def pca_figure(proj: Projection, chars: Sequence[str], title: str = "", max_labels: int = 300,
               font_size: int = 12) -> go.Figure:
    """The trajectory in the plane of the first two principal components, points labelled by the
    character just read, coloured by step."""
    T = proj.coords.shape[0]
    x = proj.coords[:, 0].tolist()
    y = proj.coords[:, 1].tolist() if proj.coords.shape[1] > 1 else [0.0] * T
    labels = [escape(display_char(c)) for c in chars]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color="#bbb", width=1), hoverinfo="skip",
                             showlegend=False))
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="markers+text" if T <= max_labels else "markers", text=labels,
        textposition="top center", textfont=dict(size=max(9, font_size - 1)),
        marker=dict(size=7, color=list(range(T)), colorscale="Viridis", showscale=True,
                    colorbar=dict(title="step")),
        customdata=list(range(T)), hovertemplate="step %{customdata}: %{text}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
        showlegend=False))
    ev = proj.explained.tolist() + [0.0]
    fig.update_xaxes(title=f"PC1 ({100 * ev[0]:.1f}% of variance)")
    fig.update_yaxes(title=f"PC2 ({100 * ev[1]:.1f}% of variance)" if len(ev) > 2 else "PC2")
    return _layout(fig, title or "PCA of the hidden-state trajectory", 560, font_size)


__all__ = ["ablation_figure", "ablation_rows", "counterfactual_figure", "matches_html", "pca_figure",
           "ranked_units_figure", "ranked_units_rows", "span_text_html", "unit_text_html"]
