"""Figure of a generated continuation: the probability of each generated character."""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from .states import window_labels


def generation_figure(generated: str, probs: Sequence[float], sample_probs: Sequence[float] | None = None,
                      *, font_size: int = 12) -> go.Figure:
    """Per generated character: P under the model's softmax (bars) and, when given, the probability
    under the distribution actually sampled from (tempered / top-k; line)."""
    x = window_labels(list(generated))
    traces = [go.Bar(x=x, y=list(probs), name="P (softmax, T = 1)", marker_color="#1f77b4",
                     hovertemplate="%{x}<br>P = %{y:.4f}<extra></extra>")]
    if sample_probs is not None:
        traces.append(go.Scatter(x=x, y=list(sample_probs), mode="lines+markers", name="P (as sampled)",
                                 line=dict(color="#ff7f0e", width=1), marker=dict(size=4),
                                 hovertemplate="%{x}<br>sampled with P = %{y:.4f}<extra></extra>"))
    return go.Figure(traces, layout=dict(
        height=300, font=dict(size=font_size), margin=dict(l=50, r=20, t=80, b=60),
        title=dict(text="Probability of each generated character"),
        xaxis=dict(type="category", tickangle=-90, **({"dtick": 1} if len(x) <= 120 else {})),
        yaxis=dict(range=[0, 1], title=dict(text="P")),
        legend=dict(orientation="h", y=1.0, x=0.0, xanchor="left", yanchor="bottom")))
