"""Training curves of the Train view: loss / perplexity and the gradient norm before and after
clipping. Plain lists in, Plotly figures out."""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from .common import hline, log_axis

_TRAIN, _VAL, _STEP = "#1f77b4", "#d62728", "rgba(31,119,180,0.35)"
#: The legend sits in the top margin, right of the title, never under the plot where the x-axis
#: title is (the two overlapped on a short chart).
_LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1)
_MARGIN = dict(l=60, r=20, t=80, b=50)


def _exp(values: Sequence[float], perplexity: bool) -> list[float]:
    if not perplexity:
        return list(values)
    return [math.exp(min(v, 50.0)) if v == v else v for v in values]


def loss_figure(steps: Sequence[int], losses: Sequence[float], history: Sequence[dict], *,
                perplexity: bool = False, height: int = 320) -> go.Figure:
    """Per-step minibatch loss (faint), the mean train loss and the validation loss at each
    evaluation (``history`` rows with step, train_loss, val_loss); in nats/char or as perplexity."""
    ev = [r for r in history if r.get("step")]
    x = [r["step"] for r in ev]
    label = "perplexity" if perplexity else "loss (nats/char)"
    return go.Figure([go.Scatter(x=list(steps), y=_exp(losses, perplexity), mode="lines", name="minibatch",
                                 line=dict(color=_STEP, width=1)),
                      go.Scatter(x=x, y=_exp([r["train_loss"] for r in ev], perplexity), mode="lines+markers",
                                 name="train (mean since last eval)", line=dict(color=_TRAIN)),
                      go.Scatter(x=x, y=_exp([r["val_loss"] for r in ev], perplexity), mode="lines+markers",
                                 name="validation (last 10 %)", line=dict(color=_VAL))],
                     layout=dict(title=dict(text=f"Training and validation {label}", y=0.97, yanchor="top"),
                                 height=height, xaxis=dict(title=dict(text="optimiser step")),
                                 yaxis=dict(title=dict(text=label)), legend=_LEGEND, margin=_MARGIN))


def grad_norm_figure(steps: Sequence[int], before: Sequence[float], after: Sequence[float],
                     clip: float, *, height: int = 320) -> go.Figure:
    """Global gradient norm ‖g‖ per step before and after clipping to θ (log scale)."""
    return go.Figure([go.Scatter(x=list(steps), y=list(before), mode="lines", name="before clipping",
                                 line=dict(color="#ff7f0e")),
                      go.Scatter(x=list(steps), y=list(after), mode="lines", name="after clipping",
                                 line=dict(color="#2ca02c", dash="dot"))],
                     layout=dict(title=dict(text="Global gradient norm per step", y=0.97, yanchor="top"),
                                 height=height, xaxis=dict(title=dict(text="optimiser step")),
                                 yaxis=log_axis(before, after, [clip] if clip > 0 else None, title=dict(text="‖g‖")),
                                 legend=_LEGEND, margin=_MARGIN,
                                 **(hline(clip, f"θ = {clip:g}", "grey") if clip > 0 else {})))
