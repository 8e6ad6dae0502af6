"""The depth × time figure of the Gradients view: a :class:`rnnviz.gradients.DepthFlow` in, a
``go.Figure`` out (re-exported by :mod:`rnnviz.plots.gradients`).

Top: a heat map of log₁₀‖∂L/∂H_t^(l)‖, one row per layer (the top layer on top, as the network is
drawn), columns the distance back from the loss. Bottom: the same norms as one curve per layer on a
log axis (:func:`log_axis`), each with its fitted per-step factor as a dotted line. Zeros and inf/NaN
are left as gaps on both, and counted in the subtitle.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..gradients import DepthFlow
from .common import SEQUENTIAL, display_char, escape, log_axis, log_ticks, merge, subplot_grid

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def _factor(f: float) -> str:
    return f"× {f:.3g}" if math.isfinite(f) else "× ? (too few finite points)"


def depth_notes(flow: DepthFlow) -> list[str]:
    """One line per direction: the fitted per-step factor of each layer and the per-layer factor
    going down (as shown in the subtitle)."""
    time = ", ".join(f"layer {l} {_factor(f)}" for l, f in enumerate(flow.time_factors))
    notes = [f"per step back in time: {time}"]
    if flow.num_layers > 1:
        depth = ", ".join(f"{l + 1}→{l} {_factor(float(f))}" for l, f in enumerate(flow.depth_factors))
        notes.append(f"per layer down (at the loss step): {depth}")
    return notes


def _heatmap(flow: DepthFlow, logs: np.ndarray, x: np.ndarray, lo: float, hi: float):
    vals, text = log_ticks(lo, hi)
    hover = [[f"layer {l}, {d} step(s) back (‘{escape(display_char(flow.char_at(int(d))))}’)"
              for d in x] for l in range(flow.num_layers)]
    return go.Heatmap(
        z=np.where(np.isfinite(logs), logs, np.nan), x=x, y=list(range(flow.num_layers)),
        zmin=lo, zmax=hi, colorscale=SEQUENTIAL, hovertext=hover,
        hovertemplate="%{hovertext}<br>log₁₀‖∂L/∂H‖ = %{z:.2f}<extra></extra>",
        colorbar=dict(title="‖∂L/∂H‖", tickvals=vals, ticktext=text, len=0.4, y=0.8),
        showlegend=False, xaxis="x", yaxis="y")


def _curves(flow: DepthFlow, logs: np.ndarray, x: np.ndarray) -> list:
    """Per layer its curve and its fitted per-step factor (dotted), on the lower row's axes."""
    traces = []
    for l in range(flow.num_layers):
        color = _COLORS[l % len(_COLORS)]
        y = np.power(10.0, np.where(np.isfinite(logs[l]), logs[l], np.nan))
        traces.append(go.Scatter(x=x, y=y, mode="lines", name=f"layer {l}", line=dict(color=color),
                                 hovertemplate="%{x} step(s) back<br>‖∂L/∂H‖ = %{y:.3e}<extra>"
                                 f"layer {l}</extra>", xaxis="x2", yaxis="y2"))
        fit = flow.time_fits[l]
        if math.isfinite(fit.factor) and math.isfinite(fit.intercept) and fit.intercept > 0:
            d = np.arange(fit.d_min, fit.d_max + 1)
            traces.append(go.Scatter(x=d, y=fit.intercept * fit.factor ** d.astype(float), mode="lines",
                                     name=f"layer {l} fit: {_factor(fit.factor)} per step",
                                     line=dict(color=color, dash="dot", width=1), hoverinfo="skip",
                                     xaxis="x2", yaxis="y2"))
    return traces


def depth_flow_figure(flow: DepthFlow) -> go.Figure:
    """Layer × distance heat map over per-layer curves (log axis) of ‖∂L/∂H_t^(l)‖ (module doc)."""
    x = flow.distance.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(flow.norms.double().numpy())
    finite = logs[np.isfinite(logs)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    notes = depth_notes(flow)
    n_zero, n_bad = int(np.isneginf(logs).sum()), int((np.isposinf(logs) | np.isnan(logs)).sum())
    if n_zero or n_bad:
        notes.append(f"gaps: {n_zero} exact zeros, {n_bad} inf/NaN")
    what = {"last": "the last step", "step": f"step s = {flow.loss_step}", "sum": "all steps (sum)"}[flow.loss]
    title = f"Gradient flow over depth and time (loss at {what})" + "".join(f"<br><sup>{n}</sup>" for n in notes)
    layout = merge(subplot_grid((0.38, 0.62), 0.06),
                   yaxis=dict(title=dict(text="layer"), tickvals=list(range(flow.num_layers))),
                   yaxis2=dict(log_axis(log10_range=(lo, hi)), title=dict(text="‖∂L/∂H_t‖ (log scale)")),
                   xaxis2=dict(title=dict(text="distance from the loss (steps back in time)")),
                   title=dict(text=title), height=560 + 22 * len(notes),
                   margin=dict(l=60, r=20, t=60 + 22 * len(notes), b=60),
                   legend=dict(orientation="h", yanchor="top", y=-0.12, x=0, font=dict(size=11)),
                   hovermode="closest")
    return go.Figure([_heatmap(flow, logs, x, lo, hi)] + _curves(flow, logs, x), layout=layout)
