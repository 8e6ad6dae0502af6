"""Once-per-process start-up work of the app: freeze the import-time objects out of the garbage
collector, start the warm-up thread, put Plotly.js where Streamlit serves it, and (optionally) log
each script run's time."""

from __future__ import annotations

import gc
import html
import logging
import os
import threading
import time
from pathlib import Path

import streamlit as st

from app_pages.ui.plotly_component import install_plotly_js

log = logging.getLogger(__name__)

_STARTUP_FROZEN = False


def freeze_startup_objects() -> None:
    """Once per process: move every object alive now (the modules of torch, plotly, pandas,
    streamlit, rnnviz …, about 250,000 objects) out of the garbage collector's view (gc.freeze).

    Streamlit runs a full gc.collect(2) after every script run; over those objects it costs
    about 0.11 CPU-s per rerun — most of the server's own work for a light view. Frozen, the
    collection scans only what sessions created since, and still frees their cycles."""
    global _STARTUP_FROZEN
    if not _STARTUP_FROZEN:
        import pandas  # noqa: F401  (the views import these anyway; load them before freezing)
        import plotly.graph_objects  # noqa: F401

        import rnnviz.gradients  # noqa: F401
        import rnnviz.units  # noqa: F401
        gc.freeze()
        _STARTUP_FROZEN = True


def serve_plotly_js(app_folder: str | Path) -> None:
    """Plotly.js in the app's static folder (plotly_component.install_plotly_js; a no-op after the
    first run). Where it cannot be written, the server log has why and the page says so."""
    try:
        install_plotly_js(app_folder)
    except OSError:
        log.exception("cannot put Plotly.js into %s/static", app_folder)
        st.error("The charts cannot be drawn: the server could not prepare Plotly.js (see its log; "
                 "a read-only install runs `python -m app_pages.ui.plotly_component` once).")


_WARMUP_STARTED = False


def start_warmup() -> None:
    """Once per process, unless RNNVIZ_WARMUP=0, in a background thread: compile (or load from
    numba's disk cache) the gradient kernels, so the first Gradients view does not wait for the
    compiler, then build the shipped checkpoints' default unit indexes
    (rnnviz.units.prebuild_indexes), so the first visit to Units does not stall a class for
    3–20 s per checkpoint. The tests turn it off (tests/conftest.py)."""
    global _WARMUP_STARTED
    if _WARMUP_STARTED or os.environ.get("RNNVIZ_WARMUP", "1") == "0":
        return
    _WARMUP_STARTED = True
    from rnnviz import kernels, units

    def warm_up() -> None:
        kernels.warm_up()          # compile or load the gradient kernels (first run on a machine: ~10 s)
        units.prebuild_indexes()

    threading.Thread(target=warm_up, name="rnnviz-warmup", daemon=True).start()


_RUN_LOG_LOCK = threading.Lock()


def log_script_run(page: str, started: float) -> None:
    """If RNNVIZ_RUN_LOG names a file, append "<unix time> <seconds> <page>" for this script run
    (started: time.perf_counter() at the top of app.py). tools/loadtest.py reads it to report the
    server's own time per update apart from the browsers'. Off by default. With it, the run also
    ends with a hidden marker element (this session's run count), which the load scripts wait for."""
    path = os.environ.get("RNNVIZ_RUN_LOG")
    if not path:
        return
    with _RUN_LOG_LOCK, open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{time.time():.3f} {time.perf_counter() - started:.4f} {page}\n")
    # The last element of the run, for the load test's wait: this session's run count and view.
    # Its new count in the page means the whole run has reached the browser (the script-state
    # attribute can skip a short run in a busy browser). Hidden; only with RNNVIZ_RUN_LOG.
    n = st.session_state["_rnnviz_runs"] = st.session_state.get("_rnnviz_runs", 0) + 1
    st.html(f'<div hidden data-rnnviz-run="{n}" data-rnnviz-view="{html.escape(page)}"></div>')
