"""Train: watch a char-RNN learn a text of your choice, then explore it in every view.

The run trains off the script thread in the server's bounded pool (rnnviz.training.pool); this page
submits it, polls its snapshot from a fragment, and registers the result as a checkpoint of this
session (app_pages.ui.trained)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.charts import show_chart
from app_pages.ui.context import context
from app_pages.ui.lecture import explanation
from app_pages.ui.train_input import TrainText, text_from_state, text_input
from app_pages.ui.train_result import finished, prefix, prefix_input, samples_panel
from app_pages.ui.trained import KEPT, RUN_KEY, leave_training, session_id, training_pool
from rnnviz import CELLS
from rnnviz.plots import states as splots
from rnnviz.plots import training as tplots
from rnnviz.training.config import TrainConfig
from rnnviz.corpora import CorpusNotFound
from rnnviz.training.limits import TrainRefused, check_text
from rnnviz.training.memorise import memorising
from rnnviz.training.pool import run_config
from rnnviz.training.run import DONE, PAUSED, QUEUED, RUNNING, Snapshot

REFRESH_S = 1.0
LR_CHOICES = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
PROBE_UNITS = 48
LAST_KEY = "train_last"


#: The knobs' widget keys and defaults (config_from_state reads them at click time).
KNOBS = {"tr_cell": "lstm", "tr_hidden": 128, "tr_layers": 1, "tr_seed": 0, "tr_T": 64, "tr_B": 32,
         "tr_lr": 0.01, "tr_clip": 1.0, "tr_by": "steps", "tr_steps": 400, "tr_secs": 30}


def knobs() -> None:
    """The model and optimisation knobs; defaults learn visibly within ~30 s on one core."""
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox("Cell", CELLS, index=CELLS.index(KNOBS["tr_cell"]), key="tr_cell", **KEPT)
    c2.select_slider("Hidden size", [16, 32, 64, 128, 256, 384, 512], value=KNOBS["tr_hidden"],
                     key="tr_hidden", **KEPT)
    c3.radio("Layers", [1, 2], horizontal=True, key="tr_layers", **KEPT)
    c4.number_input("Seed", 0, 2**31 - 1, KNOBS["tr_seed"], key="tr_seed", **KEPT)
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Sequence length T", 4, 256, KNOBS["tr_T"], key="tr_T", **KEPT)
    c2.number_input("Batch size B", 1, 128, KNOBS["tr_B"], key="tr_B", **KEPT)
    c3.select_slider("Learning rate (Adam)", LR_CHOICES, value=KNOBS["tr_lr"], key="tr_lr", **KEPT)
    c4.number_input("Clip θ (0: off)", 0.0, 100.0, KNOBS["tr_clip"], step=0.5, key="tr_clip", **KEPT)
    c1, c2 = st.columns([1, 3])
    if c1.radio("Budget", ["steps", "seconds"], horizontal=True, key="tr_by", **KEPT) == "steps":
        c2.number_input("Optimiser steps", 5, 20_000, KNOBS["tr_steps"], step=50, key="tr_steps", **KEPT)
    else:
        c2.number_input("Seconds of training", 5, 600, KNOBS["tr_secs"], step=5, key="tr_secs", **KEPT)


def config_from_state(got: TrainText | None) -> TrainConfig:
    """The run's settings as the widgets hold them now (in the Train callback: the values typed
    just before the click, which the previous run never saw)."""
    v = {k: st.session_state.get(k, d) for k, d in KNOBS.items()}
    by_steps = v["tr_by"] == "steps"
    return run_config(cell=v["tr_cell"], hidden=v["tr_hidden"], layers=v["tr_layers"],
                      num_steps=int(v["tr_T"]), batch_size=int(v["tr_B"]), lr=v["tr_lr"],
                      clip=float(v["tr_clip"]), max_steps=int(v["tr_steps"]) if by_steps else 0,
                      max_seconds=0.0 if by_steps else float(v["tr_secs"]), seed=int(v["tr_seed"]),
                      preprocessing=got.preprocessing if got else "none",
                      corpus=got.name if got else "text")


def _train() -> None:
    """Train's callback: text and settings are read here, at click time, from the session state."""
    leave_training()
    try:
        got = text_from_state(training_pool().limits)
        if got is None:
            raise TrainRefused("Choose a text to train on first.")
        check_text(got.text, got.preprocessing, training_pool().limits)
        cfg, note = training_pool().fit(got.text, config_from_state(got))   # memory, before anything
        st.session_state[RUN_KEY] = training_pool().submit(
            session_id(), got.text, cfg, {"trained_in": "rnnviz Train view"}, prefix=prefix())
        if note:
            st.session_state["train_note"] = note
    except (ValueError, CorpusNotFound) as err:       # TrainRefused is a ValueError
        st.session_state["train_error"] = str(err)


def _stop() -> None:
    rid = st.session_state.get(RUN_KEY)
    if rid is not None and training_pool().stop(rid, session_id()) == "left":
        st.session_state.pop(RUN_KEY, None)
        st.session_state["train_error"] = ("Other sessions follow this identical run, so it goes on for "
                                           "them; you stopped following it.")


def _continue() -> None:
    rid = st.session_state.get(RUN_KEY)
    if rid is not None and not training_pool().resume(rid, session_id()):
        st.session_state["train_error"] = ("This run can no longer continue (the server let go of it "
                                           "while it was idle); press Train to start again.")


def buttons(got: TrainText | None, snap: Snapshot | None) -> None:
    active = snap is not None and snap.status in (QUEUED, RUNNING)
    c1, c2, c3, c4 = st.columns(4)
    c1.button("Train", type="primary", key="tr_train", disabled=got is None or active, on_click=_train,
              use_container_width=True)
    c2.button("Stop", key="tr_stop", disabled=not active, on_click=_stop, use_container_width=True)
    c3.button("Continue", key="tr_continue", disabled=snap is None or snap.status != PAUSED,
              on_click=_continue, use_container_width=True)
    c4.button("Reset", key="tr_reset", disabled=snap is None, on_click=leave_training,
              use_container_width=True)
    if err := st.session_state.pop("train_error", None):
        st.error(err)
    if note := st.session_state.pop("train_note", None):
        st.info(note)


def status_line(snap: Snapshot) -> None:
    if snap.status == QUEUED:
        n = training_pool().workers
        st.info(f"Queued: position {snap.queue_position or 1} — this server trains {n} run"
                f"{'s' if n > 1 else ''} at a time; yours starts when a trainer is free.")
    elif snap.message:
        (st.error if snap.status == "failed" else st.success if snap.status == DONE else st.info)(
            snap.message[0].upper() + snap.message[1:] + ".")
    if snap.holders > 1:
        st.caption(f"{snap.holders} sessions follow this identical run (same text, settings and seed): "
                   "it is computed once for all of them.")
    best = min((r["val_loss"] for r in snap.history), default=None)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Step", f"{snap.step:,}" + (f" / {snap.max_steps:,}" if snap.max_steps else ""))
    c2.metric("Throughput", f"{snap.chars_per_second:,.0f} chars/s")
    c3.metric("Time left", "—" if snap.seconds_left is None else f"{snap.seconds_left:,.0f} s")
    c4.metric("Best val perplexity", "—" if best is None else f"{2.718281828 ** best:.2f}")
    if (m := memorising(snap.history)) is not None:
        st.warning(m.sentence())          # #28: validation flat while training falls


def curves(snap: Snapshot, clip: float) -> None:
    ctx = context()
    ppl = st.toggle("Show perplexity instead of loss", key="tr_ppl", **KEPT)
    c1, c2 = st.columns(2)
    with c1:
        show_chart(tplots.loss_figure(snap.steps, snap.losses, snap.history, perplexity=ppl), ctx,
                   "train-loss", text_independent=True)
    with c2:
        show_chart(tplots.grad_norm_figure(snap.steps, snap.grad_before, snap.grad_after, clip), ctx,
                   "train-grad", text_independent=True)
    if snap.probe_h is not None:
        units = range(min(PROBE_UNITS, snap.probe_h.shape[1]))
        fig = splots.state_heatmap(snap.probe_h, snap.probe_chars, units=units,
                                   title=f"Top-layer H_t on a fixed probe text at step {snap.probe_step} "
                                         f"(first {len(units)} units)", font_size=ctx.font_size)
        show_chart(fig, ctx, "train-probe", text_independent=True)
    samples_panel(snap)


def current(run_id: int) -> Snapshot | None:
    """The run's snapshot; once the pool has let go of a finished run, the last one this session
    saw (kept so an idle tab still shows its curves)."""
    snap = training_pool().snapshot(run_id, session_id())
    last = st.session_state.get(LAST_KEY)
    if snap is None and last is not None and last.run_id == run_id:
        return last
    if snap is not None and snap.status not in (QUEUED, RUNNING):
        st.session_state[LAST_KEY] = snap
    return snap


def _live(run_id: int, was_active: bool) -> None:
    snap = current(run_id)
    if snap is None:
        st.warning("This run no longer exists (it was released). Press Train to start again.")
        return
    status_line(snap)
    curves(snap, snap.config.get("clip", 0.0))
    if was_active and snap.status not in (QUEUED, RUNNING):
        st.rerun()           # the whole page: finished part, sidebar list, stop polling


live_polling = st.fragment(run_every=REFRESH_S)(_live)
live_static = st.fragment(_live)


st.title("Train")
with explanation("train"):                      # lecture mode: the teacher says it (#28)
    st.markdown("Train a character-level RNN on a text of your choice and watch it learn: the loss falls, "
                "the gradient norm is clipped, the samples turn into words. The parameters are estimated "
                "by autograd and stochastic gradient descent (Adam), truncated BPTT over T characters.")
got = text_input(training_pool().limits)
knobs()
prefix_input()
if got is not None and (fit_note := training_pool().fit_text(got.text, config_from_state(got))[1]):
    st.info(fit_note)          # said before the click: a short text trains with a smaller B and T
rid = st.session_state.get(RUN_KEY)
snap = current(rid) if rid is not None else None
buttons(got, snap)
if rid is not None and snap is None:
    st.session_state.pop(RUN_KEY, None)
    st.warning("Your run was released (this session was idle or left the page); press Train again.")
if snap is not None:
    active = snap.status in (QUEUED, RUNNING)
    (live_polling if active else live_static)(rid, active)
    if snap.checkpoint is not None and not active:
        finished(snap)
