"""The "training step" scrubber: on a checkpoint with a training timeline (rnnviz.timeline), a view
shows the model at any recorded step of its training.

    ctx = training_step(ctx, "hs")     # after the title: slider + play; ctx of the chosen snapshot
    ...                                # the view, drawn from ctx as usual
    play_next("hs")                    # at the very end: while playing, go on to the next step

The snapshots are loaded once per server (``st.cache_resource``, keyed by the checkpoint's ModelRef
and the timeline file's size and mtime); each snapshot gets its own ModelRef (``<name>@<step>``), so
every cache of the view keys on the snapshot, never on the checkpoint. The URL key is
``<prefix>.tstep`` (declared in app_pages/ui/params.py). A snapshot's charts carry the digest of
``<name>@<step>`` and the text in their meta (the checkpoint's: of ``<name>``), so a page benchmark
can tell a scrub step's charts from the previous step's (tools/bench_page_scrub.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math

import streamlit as st

from app_pages.ui.cache import UPLOAD_PREFIX, cached_trace
from app_pages.ui.context import Context
from app_pages.ui.settings import settings
from app_pages.ui.url import sync, use
from app_pages.ui.work import LIMITS
from rnnviz import CheckpointError, TextError
from rnnviz.ref import ModelRef, model_ref
from rnnviz.timeline import Snapshot, load_timeline, timeline_path
from rnnviz.checkpoint import resolve_checkpoint

log = logging.getLogger(__name__)
#: The training-step key's only value on a model without a timeline.
NO_STEP = -1


def _timeline_file(model_key: str):
    """(path, size, mtime_ns) of the timeline beside a shipped checkpoint, or None."""
    if model_key.startswith(UPLOAD_PREFIX):
        return None
    try:
        path = timeline_path(resolve_checkpoint(model_key, settings().checkpoint_dir))
        stat = path.stat()
    except (CheckpointError, OSError):
        return None
    return str(path), stat.st_size, stat.st_mtime_ns


@st.cache_resource(max_entries=4, show_spinner=False)
def _snapshots(ref: ModelRef, stamp: tuple) -> list[Snapshot]:
    snaps = load_timeline(stamp[0], settings().checkpoint_dir)
    for step, model in snaps:
        model_ref(model, f"{ref.name}@{step}")     # the content hash, once per snapshot
    return snaps


def _load(ctx: Context) -> list[Snapshot] | None:
    stamp = _timeline_file(ctx.model_key)
    if stamp is None:
        return None
    try:
        return _snapshots(ctx.ref, stamp)
    except CheckpointError as err:
        log.exception("timeline of %s refused", ctx.model_key)
        st.warning(f"This checkpoint's training timeline cannot be shown: {err}")
        return None


def _state(prefix: str) -> tuple[str, str, str]:
    """Session-state keys: the slider, "playing", and the step the next run starts at."""
    return f"{prefix}_tstep", f"_{prefix}_tplay", f"_{prefix}_tnext"


def _loss_line(step: int, snap_model, final_model, steps: list[int]) -> str:
    loss = snap_model.provenance.get("timeline_val_loss")
    final = final_model.provenance.get("timeline_val_loss")
    where = f"Training step {step:,} of {steps[-1]:,} (snapshot {steps.index(step) + 1} of {len(steps)})"
    if not isinstance(loss, (int, float)) or not math.isfinite(loss):
        return where + "; no held-out loss recorded."
    line = f"{where} · held-out loss at this step: {loss:.3f} nats/char (perplexity {math.exp(loss):.2f})"
    if isinstance(final, (int, float)) and math.isfinite(final) and step != steps[-1]:
        line += f"; at the checkpoint: {final:.3f}"
    return line + "."


def _controls(prefix: str, steps: list[int]) -> int:
    widget, playing, pending = _state(prefix)
    if pending in st.session_state:                    # the step play_next chose for this run
        st.session_state[widget] = st.session_state.pop(pending)
    use(f"{prefix}.tstep", tsteps=steps)
    st.session_state[f"_{prefix}_tsteps"] = steps
    left, right = st.columns([6, 1])
    with right:
        if st.session_state.get(playing):
            if st.button("⏸ Pause", key=f"{prefix}_tpause"):
                st.session_state[playing] = False
        elif st.button("▶ Play", key=f"{prefix}_tplaybtn", help="Step through the training snapshots"):
            st.session_state[playing] = True
            if st.session_state[widget] == steps[-1]:
                st.session_state[widget] = steps[0]   # play from the start
    with left:
        step = st.select_slider("Training step", steps, key=widget, format_func=lambda s: f"{s:,}",
                                help="The model as it was after this many optimiser steps "
                                     "(snapshots spaced logarithmically: early steps change most).")
    sync(f"{prefix}.tstep")
    return step


def training_step(ctx: Context, prefix: str) -> Context:
    """Draw the scrubber when ``ctx``'s checkpoint has a timeline and return the context of the
    chosen snapshot (``ctx`` itself at the last step, which is the checkpoint, and when there is no
    timeline). The URL key ``<prefix>.tstep`` is read either way (a link's value for a model
    without a timeline is named as ignored)."""
    snaps = _load(ctx)
    if not snaps or len(snaps) < 2:
        # -1 (never a step): a model with a timeline opened next starts at its last step, not 0
        use(f"{prefix}.tstep", tsteps=[NO_STEP])
        return ctx
    steps = [s for s, _ in snaps]
    step = _controls(prefix, steps)
    model = dict(snaps)[step]
    st.caption(_loss_line(step, model, snaps[-1].model, steps))
    if step == steps[-1]:
        return ctx
    ref = model_ref(model, f"{ctx.model_key}@{step}")
    trace, error = None, None
    try:
        trace = cached_trace(ref, model, ctx.text)
    except TextError as err:
        error = str(err)
    except LIMITS as err:
        error = f"The trace at this training step was refused: {err}"
    digest = hashlib.sha256(f"{ctx.model_key}@{step}\0{ctx.text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return dataclasses.replace(ctx, model=model, ref=ref, trace=trace, error=error or ctx.error, train_step=step,
                               digest=digest)


def playing(prefix: str) -> bool:
    """Whether the view's timeline is playing (a view may skip slow extras until it pauses)."""
    return bool(st.session_state.get(_state(prefix)[1]))


def play_next(prefix: str) -> None:
    """At the end of the view: while playing, rerun at the next snapshot (stop at the last)."""
    widget, playing, pending = _state(prefix)
    if not st.session_state.get(playing):
        return
    steps = st.session_state.get(f"_{prefix}_tsteps", [])
    current = st.session_state.get(widget)
    if current in steps and current != steps[-1]:
        st.session_state[pending] = steps[steps.index(current) + 1]
    else:
        st.session_state[playing] = False              # done: one more run shows ▶ Play again
    st.rerun()
