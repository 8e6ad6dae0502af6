"""Text coloured character by character (Karpathy's "visualizing RNN cells" figure) as HTML.

Every piece of user text goes through :func:`rnnviz.plots.common.escape`; the only markup in the
result is the spans this module writes. Invisible characters are shown as symbols (␣ is left as a
coloured space so the text still wraps like text; ⏎ is shown and then a line break).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import plotly.colors as pcolors

from .common import DIVERGING, SEQUENTIAL, display_char, escape

_LUT_SIZE = 101


@lru_cache(maxsize=8)
def _lut(scale: str) -> tuple[tuple[int, int, int], ...]:
    reverse = scale.endswith("_r")
    name = scale[:-2] if reverse else scale
    colors = pcolors.get_colorscale(name)
    if reverse:
        colors = [[1 - p, c] for p, c in reversed(colors)]
    out = []
    for c in pcolors.sample_colorscale(colors, [i / (_LUT_SIZE - 1) for i in range(_LUT_SIZE)]):
        c = c.strip()
        if c.startswith("#"):
            out.append(pcolors.hex_to_rgb(c))
        else:
            out.append(tuple(int(round(float(v))) for v in c[c.index("(") + 1:-1].split(",")[:3]))
    return tuple(out)


def color_of(value: float | None, vmin: float, vmax: float, scale: str) -> tuple[int, int, int] | None:
    """RGB of ``value`` on ``scale`` over [vmin, vmax] (None for a missing / non-finite value)."""
    if value is None or not math.isfinite(value):
        return None
    span = vmax - vmin
    x = 0.5 if span <= 0 else (value - vmin) / span
    x = min(1.0, max(0.0, x))
    return _lut(scale)[int(round(x * (_LUT_SIZE - 1)))]


def _dark(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b <= 140


def colored_text_html(chars: Sequence[str], values: Sequence[float | None], *, vmin: float,
                      vmax: float, scale: str = DIVERGING, tooltips: Sequence[str] | None = None,
                      marked: Sequence[int] = (), font_size: int = 15, caption: str = "") -> str:
    """HTML of ``chars`` with each character's background coloured by ``values[t]``.

    vmin/vmax: the colour range (for a diverging scale use −m, m so 0 is white). tooltips: optional
    hover text per character. marked: steps drawn with a red underline (e.g. ``<unk>`` characters).
    Missing values (None) are left uncoloured. Every character and tooltip is HTML-escaped.
    """
    if len(values) != len(chars):
        raise ValueError(f"{len(chars)} characters but {len(values)} values")
    marked = set(marked)
    parts = [f'<div class="rnnviz-text" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
             f'font-size:{int(font_size)}px;line-height:1.7;white-space:pre-wrap;'
             f'word-break:break-all;padding:6px;border:1px solid #ddd;border-radius:4px">']
    if caption:
        parts.append(f'<div style="font-family:sans-serif;font-size:12px;color:#666;'
                     f'margin-bottom:4px">{escape(caption)}</div>')
    for t, (ch, v) in enumerate(zip(chars, values)):
        rgb = color_of(v, vmin, vmax, scale)
        style = "" if rgb is None else "background:#%02x%02x%02x;" % rgb + ("color:#fff;" if _dark(rgb) else "")
        if t in marked:
            style += "text-decoration:underline wavy red;"
        if ch == " ":
            shown = " "
        elif ch == "\n":
            shown = "⏎"
        else:
            shown = display_char(ch)
        tip = f' title="{escape(tooltips[t])}"' if tooltips is not None else ""
        parts.append(f'<span style="{style}"{tip}>{escape(shown)}</span>')
        if ch == "\n":
            parts.append("<br>")
    parts.append("</div>")
    return "".join(parts)


def legend_html(vmin: float, vmax: float, scale: str = DIVERGING, label: str = "") -> str:
    """A small horizontal colour bar with its two ends labelled (numbers only, no user text)."""
    stops = ", ".join(f"rgb{_lut(scale)[i]} {i}%" for i in range(0, _LUT_SIZE, 10))
    return (f'<div style="display:flex;align-items:center;gap:6px;font-size:12px;color:#555">'
            f'<span>{vmin:.3g}</span><span style="display:inline-block;width:160px;height:10px;'
            f'background:linear-gradient(to right, {stops})"></span><span>{vmax:.3g}</span>'
            f'<span>{escape(label)}</span></div>')


__all__ = ["colored_text_html", "color_of", "legend_html", "DIVERGING", "SEQUENTIAL"]
