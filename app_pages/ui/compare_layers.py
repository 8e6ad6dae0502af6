"""Compare's "layers of one model": every layer of one multi-layer checkpoint side by side on the
sidebar text (H_t / C_t heatmaps, statistics, gradient-norm curves). Wiring only: numbers from
rnnviz.compare_layers, figures from rnnviz.plots.compare. URL keys ``cmp.deep``, ``cmp.kind``,
``cmp.start``, ``cmp.units`` (declared in app_pages/ui/params.py)."""

from __future__ import annotations

import streamlit as st

import rnnviz
from app_pages.ui.cache import cached_trace, get_model, get_ref
from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import Context
from app_pages.ui.settings import settings
from app_pages.ui.url import sync, use
from app_pages.ui.work import LIMITS, cached_heavy, limit_message, reduced
from rnnviz import CheckpointError, TextError
from rnnviz import compare_layers as CL
from rnnviz.plots import compare as PC
from rnnviz.serving import cost

KINDS = {"h": "H_t (hidden state)", "c": "C_t (LSTM memory cell)"}
_NUMBERS = ("mean |value|", "std", f"saturated (|value| > {CL.SATURATION:g})", "lag-1 autocorrelation",
            "effective dimensions", "per-step factor (fit)", "steps to shrink 100×")


def deep_names(ctx: Context) -> list[str]:
    """The checkpoints with two layers or more: the shipped ones (from their headers) and the
    current model when it is deep (an upload included)."""
    names = [i.name for i in rnnviz.list_checkpoints(settings().checkpoint_dir) if i.config.num_layers > 1]
    if ctx.model.config.num_layers > 1 and ctx.model_key not in names:
        names.insert(0, ctx.model_key)
    return names


def _table(lc: CL.LayerComparison, curves: list[CL.LayerCurve] | None):
    df = lc.table.copy()
    if curves:
        by_layer = {f"L{c.layer}": c for c in curves}
        h = df["state"] == "H_t"
        df["per-step factor (fit)"] = [by_layer[l].factor if is_h else by_layer[l].c_factor
                                       for l, is_h in zip(df["layer"], h)]
        df["steps to shrink 100×"] = [by_layer[l].steps_to_1pct if is_h else by_layer[l].c_steps_to_1pct
                                      for l, is_h in zip(df["layer"], h)]
    return df


def layers_of_one_model(ctx: Context, uploads: dict) -> None:
    """The whole "layers of one model" section."""
    names = deep_names(ctx)
    if not names:
        st.info("No checkpoint here has more than one layer: train or upload a deeper one.")
        return
    default = ctx.model_key if ctx.model_key in names else names[0]
    use("cmp.deep", deep=names, default=default)
    with controls("cmp-deep"):
        name = st.selectbox("Model (two layers or more)", names, key="c_deep",
                            format_func=lambda k: uploads.get(k, k))
    sync("cmp.deep")
    try:
        model = ctx.model if name == ctx.model_key else get_model(name)
        ref = ctx.ref if name == ctx.model_key else get_ref(name, model)
        plan = cost.fit("trace", model.config, len(ctx.text), what="layer comparison",
                        request_seconds=settings().request_seconds)
        with st.spinner("Tracing the text through every layer…"):
            text = ctx.text[:plan.steps]
            trace = cached_trace(ref, model, text)
            lc = cached_heavy("trace", CL.compare_layers, (ref, text), model, trace, name=ref.name)
    except LIMITS as err:
        st.warning(limit_message("layer comparison", err))
        return
    except (CheckpointError, TextError, ValueError) as err:
        st.error(f"Cannot compare the layers: {err}")
        return
    reduced(plan)
    curves = _gradients(ref, model, lc)
    st.subheader(f"{lc.num_layers} layers of {uploads.get(name, name)} ({lc.cell}, h = {lc.hidden_size})")
    st.dataframe(_table(lc, curves), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in _NUMBERS})
    st.caption(f"Over the {len(lc.chars):,} characters the model reads. Saturated: |value| > "
               f"{CL.SATURATION:g}, where tanh passes little gradient. Lag-1 autocorrelation near 1: the "
               "layer changes slowly. Effective dimensions: the participation ratio of the units' "
               "covariance. The gradient columns: the fitted per-step factor of ‖∂ℓ/∂H_t‖ (of ‖∂ℓ/∂C_t‖ "
               "on a C_t row) of the per-layer curves below.")
    _heatmaps(ctx, lc)
    if curves:
        st.subheader("Gradient norms per layer")
        show_chart(PC.gradient_curves({f"layer {c.layer}": (c.distance, c.norms) for c in reversed(curves)},
                                      x_title="steps back from the last prediction",
                                      y_title="‖∂ℓ/∂H_t^(l)‖"), ctx, "cmp_layer_grads")
        st.caption(f"‖∂ℓ/∂H_t‖ of each layer for the loss ℓ of the last prediction, on the last "
                   f"{CL.GRAD_MAX_CHARS:,} characters (at most). The Gradients view has the depth × time "
                   "map and the what-if knobs.")


def _gradients(ref, model, lc: CL.LayerComparison) -> list[CL.LayerCurve] | None:
    text = "".join(lc.chars)
    try:
        plan = cost.fit("norm_curve", model.config, min(len(text), CL.GRAD_MAX_CHARS), what="gradient curves",
                        request_seconds=settings().request_seconds)
        curves = cached_heavy("norm_curve", CL.layer_gradient_curves, (ref, text, plan.steps), model, text,
                              max_chars=plan.steps)
        reduced(plan)
        return curves
    except LIMITS as err:
        st.warning(limit_message("gradient curves", err))
    except ValueError as err:
        st.info(f"No gradient curves: {err}")
    return None


def _heatmaps(ctx: Context, lc: CL.LayerComparison) -> None:
    T = len(lc.chars)
    width = min(PC.MAX_WINDOW, T, 200)
    kinds = {k: KINDS[k] for k in lc.kinds()}
    use("cmp.kind", "cmp.start", "cmp.units", kinds=list(kinds), last_start=max(T - width, 0))
    with controls("cmp-layer-states", navigation=True):
        c1, c2, c3 = st.columns([2, 3, 2])
        kind = c1.radio("state", list(kinds), format_func=kinds.get, key="c_kind", horizontal=True)
        start = 0
        if T > width:
            start = c2.slider("window start (step)", 0, T - width, key="c_start")
        else:
            c2.caption(f"All {T} steps shown.")
        max_units = c3.slider("units per layer (highest variance)", 8, 128, step=8, key="c_units")
    sync("cmp.kind", "cmp.start", "cmp.units")
    st.subheader("Every layer's states")
    show_chart(PC.layer_small_multiples(lc, kind, start, width, max_units), ctx, "cmp_layer_states")
    st.caption("The top layer first. One colour scale centred on 0 for every layer (blue negative, red "
               "positive), so the layers' magnitudes compare directly.")
