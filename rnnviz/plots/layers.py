"""Every layer of a model on one time axis: stacked units × characters heat maps sharing x.

One block per state (H_t of each layer, and C_t for an LSTM), the top layer on top as the network is
drawn, each block with its own colour range (±max |value| of that block: deeper layers and C_t
live on other scales) and its own unit order. Plain data in, ``go.Figure`` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import DIVERGING, merge, subplot_grid
from .states import _np, char_axis, symmetric_range, unit_labels, window_labels

#: Height in pixels of one block's rows (clamped per block), and of the space around them.
BLOCK_MIN_PX, BLOCK_MAX_PX, FRAME_PX = 90, 260, 140


@dataclass
class Block:
    """One state of one layer: ``label`` (e.g. "layer 1 · H_t"), ``values`` (W, h) over the window,
    ``units`` (row order, top to bottom; None: 0 … h − 1), ``symbol`` (H or C, for the hover),
    ``layer`` and ``kind`` ("h" / "c": the units' names, :func:`rnnviz.units.names.unit_name`)."""

    label: str
    values: object
    units: Sequence[int] | None = None
    symbol: str = "H"
    layer: int = 0
    kind: str = "h"


def stacked_layers_figure(blocks: Sequence[Block], chars: Sequence[str], *, start: int = 0,
                          title: str = "", font_size: int = 12) -> go.Figure:
    """The ``blocks`` (in the order given, top to bottom) over the same characters ``chars`` (read at
    steps ``start`` …), one heat map each on a shared category x axis. Raises ValueError when a
    block's values are not (len(chars), h)."""
    x = window_labels(chars, start)
    heights = []
    for b in blocks:
        a = _np(b.values)
        if a.ndim != 2 or a.shape[0] != len(chars):
            raise ValueError(f"{b.label}: values must be (len(chars), h); got {a.shape}")
        heights.append(int(np.clip(2.5 * a.shape[1], BLOCK_MIN_PX, BLOCK_MAX_PX)))
    layout = subplot_grid(tuple(h / sum(heights) for h in heights), 0.03, tuple(b.label for b in blocks))
    traces = []
    for row, b in enumerate(blocks, start=1):
        a = _np(b.values)
        units = list(range(a.shape[1])) if b.units is None else list(b.units)
        m = symmetric_range(a)
        suffix = "" if row == 1 else str(row)
        traces.append(go.Heatmap(
            z=np.ascontiguousarray(a[:, units].T), x=x, y=unit_labels(units, b.layer, b.kind), colorscale=DIVERGING,
            zmid=0.0, zmin=-m, zmax=m, showscale=False, name=b.label, xaxis=f"x{suffix}", yaxis=f"y{suffix}",
            hovertemplate=f"{b.label}<br>step:char %{{x}}<br>unit %{{y}}<br>{b.symbol} = %{{z:.4f}}"
                          f" (colour range ±{m:.3g})<extra></extra>"))
        merge(layout, **{f"yaxis{suffix}": dict(type="category", autorange="reversed", showticklabels=False,
                                                title=dict(text=f"{len(units)} units"))})
    axis = char_axis(chars, x, font_size)
    axis["title"] = dict(text="character read at step t")
    merge(layout, **{f"xaxis{'' if len(blocks) == 1 else len(blocks)}": axis},
          title=dict(text=title), height=sum(heights) + FRAME_PX,
          margin=dict(l=60, r=20, t=60 if title else 30, b=60), font=dict(size=font_size))
    return go.Figure(traces, layout=layout)
