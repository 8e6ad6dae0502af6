"""Figures of the Lesson §6.3 view: pure functions, plain data in (rnnviz.lesson results), Plotly out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..lesson import BigramResult, Forgetting, ToyResult, WordAttribution
from .common import DIVERGING, PROBABILITY, display_char, escape, log_axis


def _label(ch: str) -> str:
    """A visible, HTML-escaped label for one character; a lone surrogate (not valid UTF-8, which
    Plotly's JSON refuses) shows as U+FFFD."""
    if len(ch) == 1 and 0xD800 <= ord(ch) <= 0xDFFF:
        ch = "\ufffd"
    return escape(display_char(ch))



def _annotated(z: np.ndarray, x: list[str], y: list[str], zmax: float, name: str) -> go.Heatmap:
    return go.Heatmap(z=z, x=x, y=y, colorscale=DIVERGING, zmid=0, zmin=-zmax, zmax=zmax,
                      showscale=False, texttemplate="%{z:.2f}", textfont=dict(size=14), name=name,
                      xgap=2, ygap=2,
                      hovertemplate=f"{name}<br>%{{y}}, %{{x}}<br>%{{z:.4f}}<extra></extra>")


def toy_figure(res: ToyResult) -> go.Figure:
    """The toy network's four matrices, one row per time step: A = pre-activation (3×2),
    H = φ(A) (3×2), Z = H W_hq + b_q (3×3), O = φ(Z) (3×3); values written in the cells."""
    phi = "ReLU" if res.activation == "relu" else "tanh"
    mats = [("A = XW_xh + HW_hh + b_h", res.A, "unit"),
            (f"H = {phi}(A)", res.H, "unit"),
            ("Z = H W_hq + b_q", res.Z, "output"),
            (f"O = {phi}(Z)", res.O, "output")]
    zmax = max(float(np.abs(m.numpy()).max()) for _, m, _ in mats) or 1.0
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.05,
                        subplot_titles=[f"{t}  ({m.shape[0]}×{m.shape[1]})" for t, m, _ in mats])
    rows = [f"t={t}" for t in (1, 2, 3)]
    for col, (title, m, kind) in enumerate(mats, start=1):
        cols = [f"{kind} {j + 1}" for j in range(m.shape[1])]
        fig.add_trace(_annotated(m.numpy(), cols, rows, zmax, title.split(" = ")[0]), row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
    fig.update_layout(height=260, margin=dict(l=40, r=10, t=50, b=30))
    fig.update_annotations(font_size=12)
    return fig


def word_attribution_figure(attr: WordAttribution) -> go.Figure:
    """Grouped bars per earlier word: ‖∂O_3[by]/∂X_t‖, gradient × input, ablation ΔO_3[by]."""
    words = [escape(w) for w in attr.words]
    series = [("‖∂O₃[by]/∂Xₜ‖ (sensitivity)", attr.grad_norm),
              ("gradient × input", attr.grad_x_input),
              ("ablation: O₃[by] − O₃[by](Xₜ = 0)", attr.ablation)]
    fig = go.Figure()
    for name, values in series:
        fig.add_trace(go.Bar(x=words, y=values, name=name, texttemplate="%{y:.3f}",
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_layout(barmode="group", height=360, xaxis_title="earlier word w_t",
                      yaxis_title="effect on the score of “by”",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      margin=dict(l=50, r=10, t=40, b=40))
    return fig


def word_probs_figure(attr: WordAttribution) -> go.Figure:
    """softmax(O_3) over the word vocabulary, the target highlighted."""
    colors = ["#d62728" if w == attr.target else "#1f77b4" for w in attr.vocab]
    fig = go.Figure(go.Bar(x=[escape(w) for w in attr.vocab], y=attr.P_3.numpy(), marker_color=colors,
                           texttemplate="%{y:.3f}", hovertemplate="P(%{x}) = %{y:.4f}<extra></extra>"))
    fig.update_layout(height=280, yaxis_title="softmax(O₃)", yaxis_range=[0, 1.05],
                      margin=dict(l=50, r=10, t=20, b=40))
    return fig


def bigram_figure(res: BigramResult, max_chars: int = 30) -> go.Figure:
    """Counted P(next | previous) next to the RNN's softmax(O_t), for the most frequent characters."""
    counts = res.counts.sum(1) + res.counts.sum(0)
    order = [int(i) for i in np.argsort(-counts.numpy(), kind="stable")[:max_chars] if counts[i] > 0]
    labels = [_label(res.tokens[i]) for i in order]
    idx = np.array(order)
    counted = res.counted.numpy()[np.ix_(idx, idx)]
    rnn = res.rnn.numpy()[np.ix_(idx, idx)]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=["counted P(next | previous)", "RNN: softmax(O_t) after reading previous"])
    for col, (z, name) in enumerate([(counted, "counted"), (rnn, "RNN")], start=1):
        fig.add_trace(go.Heatmap(z=z, x=labels, y=labels, coloraxis="coloraxis", name=name,
                                 hovertemplate=(f"{name}<br>previous %{{y}} → next %{{x}}"
                                                "<br>P = %{z:.6f}<extra></extra>")),
                      row=1, col=col)
        fig.update_xaxes(type="category", title_text="next character", automargin=True, row=1, col=col)
        fig.update_yaxes(type="category", autorange="reversed", title_text="previous character" if col == 1 else None,
                         automargin=True, row=1, col=col)
    fig.update_layout(coloraxis=dict(colorscale=PROBABILITY, cmin=0, cmax=1, colorbar=dict(title="P")),
                      height=480, margin=dict(l=50, r=20, t=72, b=40))   # titles below the modebar
    return fig


def forgetting_figure(f: Forgetting) -> go.Figure:
    """‖H_t − H'_t‖ after a one-character edit, with the threshold and the step it stays below it."""
    T = len(f.text)
    x = np.arange(T)
    chars = [_label(c) for c in f.text]
    measure = f.relative if f.relative_threshold else f.distance
    label = "‖H_t − H'_t‖ / ‖H_t‖" if f.relative_threshold else "‖H_t − H'_t‖"
    fig = go.Figure()
    y = measure.numpy().copy()
    y[: f.position] = np.nan                       # identical before the edit (0 on a log axis)
    fig.add_trace(go.Scatter(x=x, y=np.where(y > 0, y, np.nan), mode="lines+markers" if T <= 300 else "lines",
                             name=label, customdata=chars,
                             hovertemplate="step %{x}: %{customdata}<br>" + label + " = %{y:.3g}<extra></extra>"))
    kl = f.output_change.numpy().copy()
    kl[: f.position] = np.nan
    fig.add_trace(go.Scatter(x=x, y=np.where(kl > 0, kl, np.nan), mode="lines", name="prediction change (KL, nats)",
                             line=dict(dash="dot"), customdata=chars,
                             hovertemplate="step %{x}: %{customdata}<br>KL(P ‖ P') = %{y:.3g} nats<extra></extra>"))
    # The three marks are named in the legend, not by labels inside the plot: those sat on the
    # curves and on each other (#28, "Lesson (c) labels overlap").
    fig.add_hline(y=f.threshold, line_dash="dash", line_color="gray", name=f"threshold {f.threshold:g}",
                  showlegend=True)
    fig.add_vline(x=f.position, line_color="#d62728", showlegend=True,
                  name=f"edit at step {f.position}: {_label(f.original_char)} → {_label(f.new_char)}")
    if f.below_at is not None:
        fig.add_vline(x=f.below_at, line_color="#2ca02c", line_dash="dot", showlegend=True,
                      name=f"forgotten after {f.steps_to_forget} steps")
    fig.update_yaxes(**log_axis(y, kl, [f.threshold], title="difference (log scale)"), automargin=True)
    fig.update_xaxes(automargin=True)
    fig.update_layout(height=420, xaxis_title="step t (character read)",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      margin=dict(l=50, r=20, t=40, b=40))
    if T <= 80:
        fig.update_xaxes(tickmode="array", tickvals=list(range(T)), ticktext=chars)
    return fig
