"""Figures of the Compare view: pure functions, plain data in (rnnviz.compare.Comparison), Plotly out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..compare import FLAG_NAMES, Comparison
from ..compare_layers import LayerComparison
from .common import DIVERGING, display_char, escape, log_axis
from ..names import act_name
from ..units.names import state_of
from .states import char_axis, unit_axis, unit_labels


def _label(ch: str) -> str:
    """A visible, HTML-escaped label for one character; a lone surrogate (not valid UTF-8, which
    Plotly's JSON refuses) shows as U+FFFD."""
    if len(ch) == 1 and 0xD800 <= ord(ch) <= 0xDFFF:
        ch = "\ufffd"
    return escape(display_char(ch))


#: Most columns one small-multiple heatmap shows (a window over longer texts).
MAX_WINDOW = 400
_COLORS = ("#1f77b4", "#d62728", "#2ca02c")


def window_bounds(length: int, start: int, width: int) -> tuple[int, int]:
    """Clip a window [start, start + width) to [0, length), width to 1..MAX_WINDOW."""
    width = max(1, min(int(width), MAX_WINDOW, max(length, 1)))
    start = max(0, min(int(start), max(length - width, 0)))
    return start, start + width


def pick_units(H: np.ndarray, max_units: int) -> np.ndarray:
    """Indices of at most ``max_units`` units, highest variance over the given steps first."""
    if H.shape[1] <= max_units:
        return np.arange(H.shape[1])
    var = H.var(axis=0)
    return np.sort(np.argsort(-var, kind="stable")[:max_units])


def hidden_small_multiples(cmp: Comparison, state: str = "top", start: int = 0, width: int = 200,
                           max_units: int = 64) -> go.Figure:
    """One heatmap of H_t (units × characters) per model, stacked, on one shared colour scale.

    state: "top" (the last layer's h) or a trace name like "layer0.h" / "layer0.c" (models
    lacking it are shown empty with a note). Every model is drawn on its *own* text (d2l-cleaned
    models read a different text), windowed to [start, start + width) of that text. Units: at most
    ``max_units`` with the highest variance in the window, labelled by their index in the model.
    """
    titles, panels = [], []
    for run in cmp.runs:
        key = act_name(run.describe['layers'] - 1, "h") if state == "top" else state
        H = run.states.get(key)
        if H is None:
            titles.append(f"{escape(run.name)}: no {escape(key)}")
            panels.append(None)
            continue
        a, b = window_bounds(H.shape[0], start, width)
        units = pick_units(H[a:b], max_units)
        titles.append(f"{escape(run.name)} ({run.describe['cell']}) · {key} · steps {a}–{b - 1} · "
                      f"{_shown(units, H)}")
        panels.append((escape(run.name), run.chars, H, a, b, units, key))
    return _panels_figure(titles, panels)


def layer_small_multiples(lc: LayerComparison, kind: str = "h", start: int = 0, width: int = 200,
                          max_units: int = 64) -> go.Figure:
    """One heatmap of one state (``kind``: "h" for H_t, "c" for the LSTM's C_t) per layer of one
    model, the top layer first, on one shared colour scale centred on 0, windowed to
    [start, start + width) of the model's text; at most ``max_units`` units (highest variance in
    the window) per layer, labelled by their names."""
    titles, panels = [], []
    for layer in range(lc.num_layers - 1, -1, -1):
        key = act_name(layer, kind)
        H = lc.states[key]
        a, b = window_bounds(H.shape[0], start, width)
        units = pick_units(H[a:b], max_units)
        titles.append(f"layer {layer} · {'C_t' if kind == 'c' else 'H_t'} · steps {a}–{b - 1} · "
                      f"{_shown(units, H)}")
        panels.append((f"layer {layer}", lc.chars, H, a, b, units, key))
    return _panels_figure(titles, panels)


def _shown(units: np.ndarray, H: np.ndarray) -> str:
    return f"{len(units)} of {H.shape[1]} units" if len(units) < H.shape[1] else f"{H.shape[1]} units"


def _panels_figure(titles: list[str], panels: list) -> go.Figure:
    """Stacked heatmaps, one per panel ``(name, chars, H, a, b, units, key)`` (None: an empty
    panel), sharing one colour axis centred on 0."""
    M = len(panels)
    panel_px, gap_px = 230, 120                     # the gap holds the rotated step:char labels
    height = M * panel_px + (M - 1) * gap_px + 90
    fig = make_subplots(rows=M, cols=1, subplot_titles=titles,
                        vertical_spacing=gap_px / (height - 90) if M > 1 else 0.0)
    for row, panel in enumerate(panels, start=1):
        if panel is None:
            continue
        name, chars, H, a, b, units, key = panel
        # Unique "step:char" labels (as common.step_labels), numbered from the window's start.
        labels = [f"{a + i}:{_label(c)}" for i, c in enumerate(chars[a:b])]
        fig.add_trace(go.Heatmap(
            z=H[a:b][:, units].T, x=labels, y=unit_labels(units, *state_of(key)), coloraxis="coloraxis",
            name=name,
            hovertemplate=f"{name}<br>step:char %{{x}}<br>unit %{{y}}<br>H=%{{z:.3f}}<extra></extra>",
        ), row=row, col=1)
        # The characters themselves along the axis, as on Hidden states (step:char when wide).
        fig.update_xaxes(**char_axis([_label(c) for c in chars[a:b]], labels), row=row, col=1)
        fig.update_yaxes(**unit_axis(units, layer=state_of(key)[0], kind=state_of(key)[1]), row=row, col=1)
    fig.update_layout(coloraxis=dict(colorscale=DIVERGING, cmid=0, colorbar=dict(title="H")),
                      height=height, margin=dict(l=50, r=20, t=40, b=50))
    return fig


def surprisal_lines(cmp: Comparison) -> go.Figure:
    """Surprisal per character of the original text, one line per model, on one plot.

    x is the position in the original text; gaps are positions a model did not predict (the first
    character; characters merged away by d2l cleaning). Hover says which character the model read
    and whether it differs from the original (case, cleaning, <unk>).
    """
    T = len(cmp.text)
    x = np.arange(T)
    orig = [_label(c) for c in cmp.text]
    fig = go.Figure()
    scatter = go.Scattergl if T > 1500 else go.Scatter
    for k, run in enumerate(cmp.runs):
        seen = [_label(c) for c in cmp.seen_chars[k]]
        flag = [FLAG_NAMES[int(f)] for f in cmp.flags[k]]
        fig.add_trace(scatter(
            x=x, y=cmp.surprisal[k], mode="lines+markers" if T <= 300 else "lines",
            name=escape(run.name), line=dict(color=_COLORS[k % len(_COLORS)], width=1.5),
            marker=dict(size=5), connectgaps=False,
            customdata=np.stack([orig, seen, flag], axis=1),
            hovertemplate=(f"{escape(run.name)}<br>position %{{x}}: %{{customdata[0]}}"
                           "<br>model read %{customdata[1]} (%{customdata[2]})"
                           "<br>surprisal %{y:.2f} nats<extra></extra>"),
        ))
    layout = dict(xaxis_title="position in the text (character being predicted)",
                  yaxis_title="surprisal −log P (nats)", height=360, hovermode="closest",
                  legend=dict(orientation="h", y=1.12), margin=dict(l=50, r=20, t=40, b=40))
    fig.update_layout(**layout)
    if T <= 80:
        fig.update_xaxes(tickmode="array", tickvals=list(range(T)), ticktext=orig)
    elif T > 300:
        fig.update_xaxes(rangeslider=dict(visible=True), range=[0, 300])
    return fig


def gradient_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], x_title: str = "k (steps back)",
                    y_title: str = "gradient norm") -> go.Figure:
    """Several gradient-norm curves on one log-scale plot: name → (x, norm)."""
    fig = go.Figure()
    ys = []
    for k, (name, (x, y)) in enumerate(curves.items()):
        y = np.asarray(y, dtype=float)
        ys.append(y)
        fig.add_trace(go.Scatter(x=np.asarray(x), y=np.where(y > 0, y, np.nan), mode="lines",
                                 name=escape(name), line=dict(color=_COLORS[k % len(_COLORS)]),
                                 hovertemplate=f"{escape(name)}<br>%{{x}}: %{{y:.3g}}<extra></extra>"))
    fig.update_yaxes(**log_axis(*ys, title=y_title))
    fig.update_layout(xaxis_title=x_title, height=340,
                      legend=dict(orientation="h", y=1.12), margin=dict(l=50, r=20, t=40, b=40))
    return fig


def unit_lines(series: list, name: str, start: int = 0, width: int = 200) -> go.Figure:
    """One unit (``rnnviz.compare.unit_series``) in every model that has it: one line per model over
    the steps [start, start + width) of its own text, hover naming the character read."""
    fig = go.Figure()
    for k, s in enumerate(series):
        if s.values is None:
            continue
        a, b = window_bounds(len(s.values), start, width)
        fig.add_trace(go.Scatter(
            x=list(range(a, b)), y=s.values[a:b].tolist(), mode="lines+markers", name=escape(s.name),
            line=dict(color=_COLORS[k % len(_COLORS)]), marker=dict(size=4),
            customdata=[_label(c) for c in s.chars[a:b]],
            hovertemplate=f"{escape(s.name)}<br>step %{{x}}: %{{customdata}}<br>{escape(name)} = %{{y:.4f}}"
                          "<extra></extra>"))
    fig.update_layout(title=dict(text=f"★ {escape(name)} in each model"), height=340,
                      margin=dict(l=60, r=20, t=40, b=50),
                      xaxis=dict(title="step (of each model's own text)"),
                      yaxis=dict(title=escape(name), zeroline=True))
    return fig
