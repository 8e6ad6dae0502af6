"""Gradients: how ∂L/∂H_t vanishes or explodes going back in time (d2l §9.7). Wiring only: numbers
from rnnviz.gradients, figures from rnnviz.plots.gradients. Knobs live in the URL (``gr.*`` keys, the shared view
convention: gr.len, gr.loss, gr.step, gr.scale, gr.act, gr.trunc, gr.clip, gr.clipv, gr.layer, gr.klayer)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import context
from app_pages.ui.lecture import explanation
from app_pages.ui.text import MAX_PAGE_CHARS, notices
from app_pages.ui.timeline import play_next, training_step
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.settings import settings
from app_pages.ui.later import show_when_ready
from app_pages.ui.work import LANES, LIMITS, cached_heavy, heavy_state, limit_message, reduced
from rnnviz import CheckpointError, TextError
from rnnviz.serving import cost
from rnnviz import gradients as G
from rnnviz.plots import gradients as PG
from rnnviz.ref import ModelRef

#: Characters analysed by default / at most (the first N of the sidebar text).
DEFAULT_LEN = 200
MAX_LEN = MAX_PAGE_CHARS
#: The Jacobian chain goes back at most this many steps (its cost is linear in it).
CHAIN_MAX_BACK = 400
#: The page's gradient-map budget (multiply–adds): a quarter of the library cap, to stay interactive.
MAP_PAGE_MACS = G.MAP_MAX_MACS / 4
ACTIVATIONS = {"as trained": None, "tanh": "tanh", "relu": "relu"}
LOSS_LABELS = {"last": "cross-entropy at the last step", "step": "cross-entropy at step s",
               "sum": "sum over all steps"}
#: The URL keys of the knobs (declared in app_pages.ui.params).
KNOBS = ("gr.len", "gr.loss", "gr.step", "gr.scale", "gr.act", "gr.trunc", "gr.clip", "gr.clipv",
         "gr.layer", "gr.klayer")

ctx = context()
view_params("gr.")


def _knobs(scale: float, act: str | None, trunc: int, clip: float, clipv: float,
           where: int | None = None) -> G.WhatIf:
    return G.WhatIf(whh_scale=float(scale), activation=act, truncate=int(trunc) or None,
                    clip_norm=float(clip) or None, clip_value=float(clipv) or None, layer=where)


# The four computations, shared by every session (app_pages.ui.work.cached_heavy: keyed by the
# ModelRef and the arguments, never the model; read-only).
def curve(ref: ModelRef, text: str, loss: str, step: int | None, knobs: tuple, model) -> G.NormCurve:
    """‖∂L/∂H_t‖ in float64 (so a vanishing gradient shows its size instead of underflowing)."""
    import torch
    return cached_heavy("norm_curve", G.norm_curve, (ref, text, loss, step, knobs), model, text, loss=loss, step=step,
                        whatif=_knobs(*knobs), dtype=torch.float64,
                        estimate=cost.estimate("norm_curve", model.config, len(text)))


def spectrum(ref: ModelRef, knobs: tuple, model) -> G.Spectrum:
    return cached_heavy("spectrum", G.whh_spectrum, (ref, knobs), model, _knobs(*knobs),
                        estimate=cost.estimate("spectrum", model.config, 1))


def chain_state(ref: ModelRef, text: str, layer: int, knobs: tuple, back: int, model, start_only: bool = False):
    """The Jacobian chain as a state (app_pages.ui.work.heavy_state: a heavy one queued, not waited for)."""
    return heavy_state("chain", G.jacobian_chain, (ref, text, layer, knobs, back), model, text, layer=layer,
                       whatif=_knobs(*knobs), max_distance=back, expected=(G.GradientError,), start_only=start_only,
                       estimate=cost.estimate("chain", model.config, min(len(text), back + 1)))


def map_state(ref: ModelRef, text: str, knobs: tuple, max_macs: float, model, start_only: bool = False):
    """The gradient map as a state (as :func:`chain_state`)."""
    cfg = model.config
    try:                                  # the rows' multiply–adds, as gradient_map will plan them
        macs = G.plan_map_rows(len(text), cfg.hidden_size, cfg.num_layers, cfg.cell, None, max_macs)[2]
    except G.GradientError:               # said by gradient_map itself
        macs = max_macs
    return heavy_state("gmap", G.gradient_map, (ref, text, knobs, max_macs), model, text,
                       whatif=_knobs(*knobs), max_macs=max_macs, expected=(G.GradientError,), start_only=start_only,
                       estimate=cost.estimate("gmap", cfg, len(text)) + macs / cost.GMAP_MACS_PER_SECOND)


def queue_heavy(text: str, layer: int, knobs: tuple, model) -> None:
    """Queue the chain and the map now, before the rest of the page is computed, if they are heavy
    (cheap ones are computed in their sections, refused ones said there)."""
    for state, call in ((chain_state, lambda: chain_call(text, layer, knobs, model)),
                        (map_state, lambda: map_call(text, knobs, model))):
        try:
            state(*call()[1], start_only=True)
        except LIMITS:
            pass


def chain_call(text: str, layer: int, knobs: tuple, model) -> tuple[cost.Plan, tuple]:
    """The Jacobian chain's plan and the arguments of its cached call (raises cost's LIMITS)."""
    plan = cost.fit("chain", model.config, min(len(text), CHAIN_MAX_BACK + 1), what="Jacobian chain",
                    request_seconds=settings().request_seconds)
    return plan, (ctx.ref, text, int(layer), knobs, max(plan.steps - 1, 1), model)


def map_call(text: str, knobs: tuple, model) -> tuple[cost.Plan, tuple]:
    """The gradient map's plan and the arguments of its cached call (raises cost's LIMITS)."""
    plan = cost.fit("gmap", model.config, len(text), what="gradient map",
                    request_seconds=settings().request_seconds)
    return plan, (ctx.ref, text[:plan.steps], knobs, min(MAP_PAGE_MACS, cost.gmap_max_macs(plan)), model)


def gradient_failed(what: str, err: BaseException) -> None:
    """A refusal, time budget or failure of ``what``, in words (a failure is in the server's log)."""
    if isinstance(err, G.GradientError):
        st.info(str(err))
    elif isinstance(err, LIMITS):
        st.warning(limit_message(what, err))
    else:
        st.warning(f"The {what} failed ({type(err).__name__}: {err}). The server's log has the details; "
                   "reload the page to try again in a moment.")


def draw_map(gm: G.GradientMap, layer: int) -> None:
    if gm.message:
        st.info(gm.message)
    show_chart(PG.gradient_map_figure(gm, layer), ctx, key="g_map")


def knob_places(lecture: bool) -> dict:
    """Where each knob goes: three columns; in lecture mode the what-if knobs in one row and the
    text, loss and layers in an expander below it, so the first chart is above the fold on a
    1280 × 720 projector (#28: every knob stays, none is hidden)."""
    if not lecture:
        c1, c2, c3 = st.columns(3)
        return {"len": c1, "loss": c1, "where": c2, "scale": c2, "act": c2, "trunc": c2, "clip": c3,
                "clipv": c3, "layer": c3}
    row = st.columns(5)
    more = st.expander("Text, loss and layer").columns(3)
    return dict(zip(("scale", "act", "trunc", "clip", "clipv"), row)) | \
        {"len": more[0], "loss": more[1], "where": more[2], "layer": more[2]}


def depth_section(nc: G.NormCurve) -> None:
    """Multi-layer models: the layer × distance map of the same norms, and depth versus time."""
    flow = G.depth_flow_from_curve(nc)
    st.subheader("Depth and time: ‖∂L/∂H_t‖ of every layer")
    if nc.whatif.describe():
        st.caption("What-if (on a copy of the model): " + ", ".join(nc.whatif.describe()))
    show_chart(PG.depth_flow_figure(flow), ctx, key="g_depth", filename="rnnviz-gradient-depth")
    st.markdown("**Depth versus time.** " + G.depth_reading(flow))


st.title("Gradients across long backprop chains")
with explanation("gradients"):
    st.markdown(
        "Backpropagation through time multiplies one Jacobian per step; for this model's cell "
        f"({ctx.model.spec.title}), {ctx.model.spec.step_jacobian} "
        "Below: the norm ‖∂L/∂H_t‖ of the *total* derivative of a loss with respect to every hidden "
        "state, against how far back it lies; the spectrum of W_hh beside it; and what-if knobs that "
        "act on a copy of the model.")

ctx = training_step(ctx, "gr")          # a checkpoint with a training timeline: the model at a step
if notices(ctx):
    model = ctx.model
    cfg = model.config
    vanilla = model.spec.is_vanilla
    text_all = ctx.trace.text if ctx.trace is not None else ctx.text
    # ------------------------------------------------------------------ knobs (URL-backed)
    use(*KNOBS, L=cfg.num_layers, losses={k: LOSS_LABELS.get(k, k) for k in G.LOSSES}, activations=list(ACTIVATIONS))
    with controls("gradients"):
        at = knob_places(ctx.lecture)
        with at["len"]:
            n_chars = st.number_input("Characters analysed (the first N of the text)", 2, MAX_LEN,
                                      key="g_len", step=50)
        text = text_all[: int(n_chars)]
        T = len(text)
        with at["loss"]:
            loss = st.selectbox("Loss L", list(G.LOSSES), format_func=LOSS_LABELS.get, key="g_loss")
            if st.session_state["g_step"] > max(T - 2, 0):
                st.session_state["g_step"] = max(T - 2, 0)
            step = st.number_input("Step s (for the loss at step s)", 0, max(T - 2, 0), key="g_step",
                                   disabled=loss != "step")
        with at["where"]:
            where = st.selectbox("Knobs act on", ["all", *range(cfg.num_layers)], key="g_klayer",
                                 format_func=lambda v: "every layer" if v == "all" else f"layer {v} only",
                                 disabled=cfg.num_layers < 2,
                                 help="The W_hh scale, the truncation and the clipping act on this layer "
                                      "only, or on every layer; φ always on every layer.")
        with at["scale"]:
            scale = st.slider("Scale W_hh by", 0.05, 5.0, key="g_scale", step=0.05,
                              help="Hidden-to-hidden weights (all gate blocks of a GRU/LSTM).")
        with at["act"]:
            act = st.selectbox("Activation φ (vanilla RNN)", list(ACTIVATIONS), key="g_act",
                               disabled=not vanilla,
                               help="Swap tanh/ReLU with the same weights, in every layer." if vanilla else
                               "Gated cells keep their σ and tanh.")
        with at["trunc"]:
            trunc = st.number_input("Truncate BPTT to k steps (0 = off)", 0, MAX_LEN, key="g_trunc")
        with at["clip"]:
            clip = st.number_input("Global-norm clipping θ (0 = off)", 0.0, 1e6, key="g_clip", step=0.5,
                                   help="d2l: g ← min(1, θ/‖g‖) g over all parameter gradients.")
        with at["clipv"]:
            clipv = st.number_input("Element-wise clipping ±c (0 = off)", 0.0, 1e6, key="g_clipv", step=0.5,
                                    help="min-char-rnn: np.clip(dparam, −c, c).")
        with at["layer"]:
            layer = st.selectbox("Layer (spectrum, Jacobian chain, map)", list(range(cfg.num_layers)),
                                 key="g_layer")
    sync(*KNOBS)
    knobs = (float(scale), ACTIVATIONS[act] if vanilla else None, int(trunc), float(clip), float(clipv),
             None if where == "all" else int(where))
    if len(text_all) > n_chars:
        st.caption(f"Analysing the first {T:,} of {len(text_all):,} characters.")

    try:
        nc_plan = cost.fit("norm_curve", cfg, T, what="gradient norm curve",
                           request_seconds=settings().request_seconds)
        nc_text = text[:nc_plan.steps]
        # The chain and the map are the longest computations: heavy ones are queued now, and drawn
        # when ready (app_pages/ui/later.py) while the curve and the spectrum are drawn at once —
        # unless the curve itself goes to the heavy lane (a 2-layer LSTM's): queued behind them it
        # would wait for both (on a busy machine past its deadline), so they are queued after it.
        curve_first = LANES.lane(cost.estimate("norm_curve", cfg, len(nc_text))) == "heavy"
        if not curve_first:
            queue_heavy(text, layer, knobs, model)
        with st.spinner("Backpropagating through time…"):
            nc = curve(ctx.ref, nc_text, loss, min(int(step), max(len(nc_text) - 2, 0))
                       if loss == "step" else None, knobs, model)
        if curve_first:
            queue_heavy(text, layer, knobs, model)
    except (G.GradientError, TextError, CheckpointError) as err:
        st.info(str(err))
    except LIMITS as err:
        st.warning(limit_message("gradient norm curve", err))
    else:
        reduced(nc_plan)
        sp, sp_error = None, None
        try:
            cost.fit("spectrum", cfg, 1, what="spectrum of W_hh (eigen- and singular values)",
                     request_seconds=settings().request_seconds)
            sp = spectrum(ctx.ref, knobs, model)
        except G.GradientError as err:
            sp_error = str(err)
        except LIMITS as err:
            sp_error = limit_message("spectrum of W_hh", err)
        active = nc.whatif.describe()
        if active:
            st.caption("What-if (on a copy of the model): " + ", ".join(active))
        left, right = st.columns([3, 2])
        with left:
            show_chart(PG.norm_curve_figure(nc), ctx, key="g_curve", filename="rnnviz-gradient-norms",
                       width=0.6)
        with right:
            if sp is None:
                st.info(sp_error)
            else:
                blocks = list(sp.blocks[layer])
                block = sp.main
                if len(blocks) > 1:
                    block = st.selectbox("W_hh block", blocks, index=blocks.index(sp.main), key="g_block")
                show_chart(PG.eigenvalue_figure(sp, layer, block), ctx, key="g_eig", text_independent=True,
                           width=0.4)
                show_chart(PG.singular_values_figure(sp, layer, block), ctx, key="g_sv",
                           text_independent=True, width=0.4)
        st.markdown("**Reading.** " + G.reading(nc, sp))
        if nc.clip is not None:
            m1, m2, m3 = st.columns(3)
            m1.metric("‖g‖ before clipping", f"{nc.clip.grad_norm:.4g}")
            m2.metric("‖g‖ after clipping", f"{nc.clip.grad_norm_after:.4g}")
            m3.metric("entries clipped (±c)", f"{100 * nc.clip.fraction_clipped:.2f} %")
        if cfg.num_layers > 1:
            depth_section(nc)

        st.subheader("Jacobian chain ‖∂H_T/∂H_t‖")
        st.caption(f"Layer {layer}, T = the last step, up to {CHAIN_MAX_BACK} steps back. Spectral norm "
                   "(largest singular value) and Frobenius norm, with the fitted per-step factor. "
                   "Truncation and clipping do not change the dynamics, so they do not apply here.")
        try:
            ch_plan, args = chain_call(text, layer, knobs, model)
        except LIMITS as err:
            gradient_failed("Jacobian chain", err)
        else:
            reduced(ch_plan)
            with st.spinner("Multiplying Jacobians…"):      # a cheap chain is computed here
                # (the page's globals change after this line: the fragment's ``ask`` binds its arguments)
                show_when_ready(lambda a=args: chain_state(*a), "Multiplying Jacobians back through time",
                                lambda ch: show_chart(PG.jacobian_chain_figure(ch), ctx, key="g_chain"),
                                lambda err: gradient_failed("Jacobian chain", err))

        st.subheader("Gradient map G[t, k] = ‖∂ℓ_t/∂H_k‖")
        st.caption("Each row is one loss ℓ_t (the prediction made at step t), each column one hidden "
                   "state H_k: how much each earlier step influences each later loss. Truncation "
                   "applies per row.")
        try:
            gm_plan, args = map_call(text, knobs, model)
        except LIMITS as err:
            gradient_failed("gradient map", err)
        else:
            reduced(gm_plan)
            with st.spinner("Backpropagating every loss at once…"):     # a cheap map is computed here
                show_when_ready(lambda a=args: map_state(*a), "Backpropagating every loss at once",
                                lambda gm: draw_map(gm, int(layer)), lambda err: gradient_failed("gradient map", err))
play_next("gr")
