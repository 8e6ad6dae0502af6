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
#: The coloured text's box and its caption (app_pages/ui/colored_text sends them to its component).
TEXT_STYLE = ("font-family:ui-monospace,Menlo,Consolas,monospace;line-height:1.7;white-space:pre-wrap;"
              "word-break:break-all;padding:6px;border:1px solid #ddd;border-radius:4px;")
CAPTION_STYLE = ("font-family:sans-serif;font-size:12px;color:#666;margin-bottom:4px;"
                 "word-break:normal;white-space:normal")   # the box breaks text anywhere, not the caption


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


def colored_text_data(chars: Sequence[str], values: Sequence[float | None], *, vmin: float,
                      vmax: float, scale: str = DIVERGING, tooltips: Sequence[str] | None = None,
                      marked: Sequence[int] = (), font_size: int = 15, caption: str = "") -> dict:
    """Plain data of ``chars`` with each character's background coloured by ``values[t]``: what
    :func:`colored_text_html` writes as HTML and the page's in-place text component draws.

    vmin/vmax: the colour range (for a diverging scale use −m, m so 0 is white). tooltips: optional
    hover text per character. marked: steps drawn with a red underline (e.g. ``<unk>`` characters).
    Missing values (None) are left uncoloured. Returns ``{"chars": [shown text per character: a
    space stays a space, a newline is "⏎\\n", others display_char], "bg": ["#rrggbb" or "" per
    character], "light": [steps with white text on a dark background], "marked": [steps],
    "tips": [hover text] or None, "font_size": int, "caption": str}``; user text stays plain text
    (the consumer escapes it or sets it as text).
    """
    if len(values) != len(chars):
        raise ValueError(f"{len(chars)} characters but {len(values)} values")
    if tooltips is not None and len(tooltips) != len(chars):
        raise ValueError(f"{len(chars)} characters but {len(tooltips)} tooltips")
    shown, bg, light = [], [], []
    for t, (ch, v) in enumerate(zip(chars, values)):
        shown.append(" " if ch == " " else "⏎\n" if ch == "\n" else display_char(ch))
        rgb = color_of(v, vmin, vmax, scale)
        bg.append("" if rgb is None else "#%02x%02x%02x" % rgb)
        if rgb is not None and _dark(rgb):
            light.append(t)
    n = len(shown)
    return {"chars": shown, "bg": bg, "light": light,
            "marked": sorted({int(t) for t in marked if 0 <= int(t) < n}),
            "tips": None if tooltips is None else [str(x) for x in tooltips],
            "font_size": int(font_size), "caption": str(caption)}


def colored_text_html(chars: Sequence[str], values: Sequence[float | None], *, vmin: float,
                      vmax: float, scale: str = DIVERGING, tooltips: Sequence[str] | None = None,
                      marked: Sequence[int] = (), font_size: int = 15, caption: str = "") -> str:
    """HTML of :func:`colored_text_data` (same arguments): a ``<div class="rnnviz-text">`` of one
    ``<span>`` per character. Every character and tooltip is HTML-escaped."""
    d = colored_text_data(chars, values, vmin=vmin, vmax=vmax, scale=scale, tooltips=tooltips,
                          marked=marked, font_size=font_size, caption=caption)
    light, marked_ = set(d["light"]), set(d["marked"])
    parts = [f'<div class="rnnviz-text" style="{TEXT_STYLE}font-size:{d["font_size"]}px">']
    if d["caption"]:
        parts.append(f'<div style="{CAPTION_STYLE}">{escape(d["caption"])}</div>')
    for t, shown in enumerate(d["chars"]):
        style = (f"background:{d['bg'][t]};" if d["bg"][t] else "") + ("color:#fff;" if t in light else "")
        if t in marked_:
            style += "text-decoration:underline wavy red;"
        tip = f' title="{escape(d["tips"][t])}"' if d["tips"] is not None else ""
        newline = shown.endswith("\n")
        parts.append(f'<span style="{style}"{tip}>{escape(shown.removesuffix(chr(10)))}</span>')
        if newline:
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


__all__ = ["colored_text_data", "colored_text_html", "color_of", "legend_html", "DIVERGING", "SEQUENTIAL"]
