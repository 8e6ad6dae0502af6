"""Once-per-process start-up work of the app: freeze the import-time objects out of the garbage
collector, start the warm-up thread, and put Plotly.js where Streamlit serves it."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from pathlib import Path

import streamlit as st

from app_pages.ui.plotly_component import install_plotly_js
from app_pages.ui.settings import settings

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


#: The script argument that skips the warm-up: ``streamlit run app.py -- --no-warmup``.
NO_WARMUP = "--no-warmup"


def start_warmup(argv: list[str] | None = None) -> None:
    """Once per process, unless the script's arguments (``argv``, default ``sys.argv[1:]``) hold
    ``--no-warmup``, in a background thread: compile (or load from numba's disk cache) the gradient
    kernels, so the first Gradients view does not wait for the compiler, then build the shipped
    checkpoints' default unit indexes (rnnviz.units.prebuild_indexes), so the first visit to Units
    does not stall a class for 3–20 s per checkpoint; before both, queue the shipped checkpoints'
    default scorecards in the heavy lane (app_pages.ui.scorecard.warm_scorecards: the Units verdict
    panel of a default visit is then read from the shared store). The tests' servers skip it."""
    global _WARMUP_STARTED
    if _WARMUP_STARTED or NO_WARMUP in (sys.argv[1:] if argv is None else argv):
        return
    _WARMUP_STARTED = True
    from rnnviz import kernels, units

    s = settings()

    def warm_up() -> None:
        from app_pages.ui.scorecard import warm_scorecards
        from app_pages.ui.sidebar import DEFAULT_CHECKPOINT

        try:                       # queued in the heavy lane (niced), computed while the rest goes on
            warm_scorecards(s)
        except Exception:          # noqa: BLE001 - a warm-up never takes the server down; the page reports
            log.exception("queueing the default scorecards failed")
        # the default checkpoint's unit index first: a class opens on it (the others are built next)
        units.prebuild_indexes([DEFAULT_CHECKPOINT], checkpoint_dir=s.checkpoint_dir, corpora_dir=s.corpora_dir)
        kernels.warm_up()          # compile or load the gradient kernels (first run on a machine: ~10 s)
        units.prebuild_indexes(checkpoint_dir=s.checkpoint_dir, corpora_dir=s.corpora_dir)

    threading.Thread(target=warm_up, name="rnnviz-warmup", daemon=True).start()

