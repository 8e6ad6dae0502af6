"""Chart decoration (``show_chart``) and the containers and window slider of a view's controls."""

from __future__ import annotations

import re

import streamlit as st

from app_pages.ui.context import Context
from app_pages.ui.plotly_component import plotly_chart_inplace
from app_pages.ui.url import sync, use
from rnnviz import views
from rnnviz.plots.common import merge, wrap_title


def controls(name: str, navigation: bool = False):
    """A container for a view's controls (key ``controls-…``, or ``nav-…`` with ``navigation=True``:
    which window, order, unit or step is shown). Both stay in lecture mode, enlarged: the knobs are
    the demonstration (app_pages/ui/lecture.py hides only explanations, uploads and exports)."""
    return st.container(key=f"nav-{name}" if navigation else f"controls-{name}")


def window_start(prefix: str, T: int, width: int) -> tuple[int, int]:
    """The "Window start (step)" slider of a view whose charts show ``width`` of ``T`` steps.

    prefix: the view's URL prefix without the dot (``"hs"``, ``"pr"``); the start lives in the URL
    as ``<prefix>.start``. Returns (start, stop) clamped by ``views.window_bounds``.
    """
    start = 0
    if T > width:
        key = f"{prefix}_start"
        use(f"{prefix}.start", last_start=T - width)
        with controls(f"{prefix}-window", navigation=True):
            start = st.slider("Window start (step)", 0, T - width, key=key)
        sync(f"{prefix}.start")
    return views.window_bounds(T, start, width)


#: Width (px) a full-width chart is assumed to have when its title is wrapped: the main column of
#: a 1,000 px wide window with the sidebar open (wider windows wrap a little early, never cut).
MAIN_WIDTH_PX = 560
#: The same in lecture mode: the main column of the smallest projector lecture mode is made for,
#: 1280 × 720 (1280 − the 300 px sidebar − 2 × 80 px padding). With MAIN_WIDTH_PX, titles on a
#: 1920 × 1080 projector wrapped after ~19 characters into a third of their chart's width.
LECTURE_WIDTH_PX = 820
#: Modebar: zoom box, pan, reset axes and the camera (PNG). Zoom in/out and autoscale went: in a
#: narrow column the full bar wrapped onto a second row over the chart's title.
MODEBAR_REMOVE = ["zoomIn2d", "zoomOut2d", "autoScale2d", "lasso2d", "select2d"]


def show_chart(fig, ctx: Context, key: str, filename: str | None = None,
               text_independent: bool = False, width: float = 1.0, on_click=None) -> None:
    """A Plotly chart with the modebar always visible (its camera button downloads a PNG),
    lecture-mode fonts, and ``layout.meta`` naming the text (the page benchmark waits on it).

    Charts are drawn in place (``plotly_chart_inplace``): the browser keeps the chart under
    ``key`` and updates it with Plotly.react instead of drawing a new one, and the user's zoom
    survives a new text. A chart out of sight is drawn when it is scrolled to, so a text update
    costs the browser only the charts in view.

    text_independent: the chart does not depend on the typed text (e.g. the W_hh spectrum). Its
    meta then says so instead of carrying the text's digest, so its figure stays the same across
    text commits and the browser keeps the drawn chart instead of drawing it again: the in-place
    chart skips a figure it already shows.

    width: the chart's share of the main column (e.g. 0.4 in the right one of ``st.columns([3, 2])``);
    its title is wrapped to fit (see _place_title).

    on_click: called with the clicked point's labels ``{"x": …, "y": …}`` (plotly_chart_inplace)."""
    # The figure as a plain dict and the decoration below as dict edits (the caller's figure is
    # left as it is: rnnviz.plots.common.merge copies what it changes): Plotly's property
    # machinery (path parsing, validation) cost ~10 ms per chart per run, and the figure travels
    # as JSON anyway.
    spec = dict(fig) if isinstance(fig, dict) else fig.to_dict()
    layout = spec["layout"] = dict(spec.get("layout") or {})
    if ctx.lecture:
        merge(layout, font=dict(size=ctx.font_size))
    _place_title(layout, ctx.font_size, width, LECTURE_WIDTH_PX if ctx.lecture else MAIN_WIDTH_PX)
    layout["meta"] = ({"chart": key, "text_independent": True} if text_independent
                      else {"rnnviz": ctx.digest, "chart": key})
    # Browser cost: on a linear/log axis Plotly's default ticklabeloverflow ("hide past div") measures
    # every tick label against the page (one forced layout each); with 80 per-character ticks that
    # was 0.15-0.2 CPU-s per chart in headless Chromium, per update. "allow" skips it; a label
    # past the chart's edge is then clipped by the chart instead of hidden (category axes
    # already default to "allow"). As fig.update_xaxes/update_yaxes: every x/y axis the layout
    # has, and the first ones always (an empty part, e.g. ``title=None``'s ``{}``, left out as
    # Plotly's update drops it).
    for name in sorted({"xaxis", "yaxis"} | {k for k in layout if _AXIS.fullmatch(k)}):
        axis = layout.get(name) if isinstance(layout.get(name), dict) else {}
        layout[name] = {k: v for k, v in axis.items() if v != {}} | {"ticklabeloverflow": "allow"}
    config = {"displayModeBar": True, "displaylogo": False, "modeBarButtonsToRemove": MODEBAR_REMOVE,
              "toImageButtonOptions": {"format": "png", "filename": filename or f"rnnviz-{key}",
                                       "scale": 2}}
    plotly_chart_inplace(spec, key=key, config=config, on_click=on_click)


#: The names of a layout's cartesian axes ("xaxis", "yaxis2", …).
_AXIS = re.compile(r"[xy]axis\d*")


def _place_title(layout: dict, font_size: int, width: float, main_px: int = MAIN_WIDTH_PX) -> None:
    """Titles at the chart's left edge, under the modebar (always shown, top right), so the two
    never overlap; wrapped to the chart's width (Plotly cuts a long title at the edge), the top
    margin and the height growing with the added lines. Plotly's title font is 1.4× the layout's.
    ``layout``: a figure dict's layout, edited in place; ``main_px``: the main column's assumed width."""
    title = layout.get("title")
    if isinstance(title, str):
        title = layout["title"] = {"text": title}
    text = (title or {}).get("text")
    if not text:
        return
    title_px = 1.4 * font_size
    chars = max(16, int((width * main_px - 24) / (0.52 * title_px)))
    wrapped = wrap_title(text, chars)
    added = int((wrapped.count("<br>") - text.count("<br>")) * 1.3 * title_px)
    # Plotly lifts a title of several lines by ~0.7 of its font size above its yanchor="top"
    # position (measured in Chromium): push it down as much, so it stays clear of the modebar.
    lift = int(0.75 * title_px) if "<br>" in wrapped else 0
    t = (layout.get("margin") or {}).get("t")
    top = (t if t is not None else 40) + 36 + added + lift
    merge(layout, title=dict(text=wrapped, x=0.0, xanchor="left", xref="container", y=1.0,
                             yref="container", yanchor="top", pad=dict(t=38 + lift, l=12)),
          margin=dict(t=max(top, 78)))
    if added + lift:
        layout["height"] = (layout.get("height") or 450) + added + lift
