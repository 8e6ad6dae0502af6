"""Plotly charts that update in place: one keyed Streamlit Components v2 element per chart.

``st.plotly_chart`` derives a chart's element id from its spec, so every new figure unmounts the
drawn chart and draws a new one from scratch (0.2–0.3 CPU-s per chart in headless Chromium).
:func:`plotly_chart_inplace` takes the same figure and keeps one component mounted under its
``key``; new figures reach the browser as data, and ``plotly_inplace.js`` (beside this file) hands
them to ``Plotly.react`` on the same ``<div>``, with ``layout.uirevision`` kept constant so zoom and
pan survive an update. A chart out of sight (below the window, in a hidden tab) keeps its newest
figure unparsed and draws it when it is scrolled into sight: an update costs the browser only the
charts the user sees (the frame says which figure waits: ``data-rnnviz-pending``, the layout's meta).

Plotly.js itself is the ``plotly.min.js`` of the installed ``plotly`` package, served by this
Streamlit server (no CDN) through Streamlit's static file serving (``server.enableStaticServing``
in .streamlit/config.toml: ``<the main script's folder>/static/`` at ``app/static/``). The app puts
a copy there at start-up (:func:`install_plotly_js`; not in git, it follows the installed package);
the page loads it once.
"""

from __future__ import annotations

import functools

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from functools import partial
from typing import Any, Callable

import plotly
import plotly.io
import streamlit as st

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
#: The installed plotly package's own Plotly.js bundle (matches the figures plotly.py writes).
PLOTLY_SOURCE = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
#: Its name in the static folder: with the package's version, so a browser never keeps an old one.
PLOTLY_JS = f"plotly-{plotly.__version__}.min.js"
_INSTALLED: set[Path] = set()
_INSTALL_LOCK = threading.Lock()

_chart = st.components.v2.component(
    "rnnviz_plotly_inplace",
    js=(_HERE / "plotly_inplace.js").read_text(encoding="utf-8"),
    # No css: it would be one more <style> element in the page per chart mounted (the JS styles its
    # elements itself).
    # Plotly.js puts its styles (modebar, hover labels) in the page's <head>: the chart must live in
    # the page's DOM, not a shadow root. This also keeps `.js-plotly-plot` visible to page scripts.
    isolate_styles=False,
)


def install_plotly_js(app_folder: str | Path) -> Path:
    """Make sure ``<app_folder>/static/`` holds the installed plotly package's Plotly.js as
    :data:`PLOTLY_JS` (app_folder: the folder of the app's main script, whose ``static/`` Streamlit
    serves); copied once per process, and only where no copy of the same size is there yet (written
    under a temporary name, then renamed: several processes may start at once). Returns the file.

    Raises OSError where the folder cannot be written: a read-only deployment builds the file
    beforehand (``python -m app_pages.ui.plotly_component <app folder>``, deploy/Dockerfile)."""
    static = Path(app_folder).resolve() / "static"
    target = static / PLOTLY_JS
    with _INSTALL_LOCK:
        if static in _INSTALLED:
            return target
        if not st.get_option("server.enableStaticServing"):
            log.error("server.enableStaticServing is off: the charts cannot load %s (set it in "
                      ".streamlit/config.toml)", PLOTLY_JS)
        size = PLOTLY_SOURCE.stat().st_size
        if not (target.is_file() and target.stat().st_size == size):
            static.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=static, prefix=".plotly-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(PLOTLY_SOURCE.read_bytes())
                os.chmod(tmp, 0o644)        # mkstemp's 0600 would hide it from another server user
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            log.info("copied %s to %s", PLOTLY_SOURCE, target)
        _INSTALLED.add(static)
    return target


@functools.cache
def plotly_js_url() -> str:
    """The URL path of :data:`PLOTLY_JS` on this server (Streamlit's static files, under the
    server's base URL path). Read once per process: a server option cannot change while it runs,
    and st.get_option takes Streamlit's one config lock, on which the soak's py-spy dumps found up
    to 11 script threads queued at once (#27), 4 of 20 of them here (once per chart per run)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{'/' + base if base else ''}/app/static/{PLOTLY_JS}"


def plotly_chart_inplace(fig: Any, key: str, config: dict | None = None,
                         on_click: Callable[[dict], None] | None = None) -> None:
    """Show a Plotly figure like ``st.plotly_chart(fig, key=key, config=config, theme=None)``,
    but keep the drawn chart and update it in place when a later run passes a new figure.

    fig: a ``plotly.graph_objects.Figure`` or a figure dict; key: the chart's
    identity on the page (required: it is what keeps the component mounted across runs);
    config: Plotly's config (modebar, image export, ...). The figure is not modified; unless it
    sets ``layout.uirevision`` itself, the browser keeps the user's zoom and pan across updates.
    The modebar gains a fullscreen button (st.plotly_chart has one in its element toolbar): the
    chart is laid over the whole window until the button is pressed again or Escape.

    on_click: called (before the next run, as a widget callback) with ``{"x": …, "y": …}``, the
    clicked point's labels as strings, when the user clicks a point of the chart (the component's
    one-time trigger value ``click``).
    """
    if not key:
        raise ValueError("plotly_chart_inplace needs a key: it is the chart's identity across runs")
    events = {} if on_click is None else {"on_click_change": partial(_clicked, key, on_click)}
    _chart(key=key, data=payload(fig, config, clicks=on_click is not None), width="stretch",
           height="content", **events)


def _clicked(key: str, on_click: Callable[[dict], None]) -> None:
    """The trigger callback: hand the clicked point to ``on_click`` (a malformed one is ignored)."""
    point = (st.session_state.get(key) or {}).get("click")
    if isinstance(point, dict) and all(isinstance(point.get(k), str) for k in ("x", "y")):
        on_click({"x": point["x"], "y": point["y"]})


def payload(fig: Any, config: dict | None = None, clicks: bool = False) -> bytes:
    """The component's data: one line of JSON (``config``; ``plotly``: the Plotly.js URL; the layout's
    ``meta`` and ``height``, which the page reads without parsing a figure it does not draw yet;
    ``clicks``: whether a click on a point is sent back), a
    newline, then the figure's JSON (``plotly.io.to_json``), UTF-8.

    Bytes rather than a dict holding the figure's JSON as a string: Streamlit JSON-encodes a dict
    twice per chart (the data, and its identity digest), escaping every quote of the figure (6 ms
    per heatmap of 256 × 333 on the server, 1.7× what st.plotly_chart spends), and the page then
    parses the figure twice; bytes travel as they are and are hashed once."""
    layout = fig.layout.to_plotly_json() if hasattr(fig, "layout") else fig.get("layout") or {}
    head = json.dumps({"config": dict(config or {}), "plotly": plotly_js_url(),
                       "meta": layout.get("meta"), "height": layout.get("height"), "clicks": clicks})
    return (head + "\n" + plotly.io.to_json(fig, validate=False)).encode("utf-8")



if __name__ == "__main__":      # python -m app_pages.ui.plotly_component [app folder]: build the copy
    import sys

    logging.basicConfig(level=logging.INFO)
    print(install_plotly_js(sys.argv[1] if len(sys.argv) > 1 else Path.cwd()))
