"""Compare: the same text through two or three checkpoints side by side. Wiring only: numbers from
rnnviz.compare (and rnnviz.gradients when present), figures from rnnviz.plots.compare."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.cache import cached_trace, get_model, get_ref, shipped_names
from app_pages.ui.charts import controls, show_chart
from app_pages.ui.compare_layers import layers_of_one_model
from app_pages.ui.context import context
from app_pages.ui.lecture import explanation
from app_pages.ui.features import saes_for
from app_pages.ui.pin import Pin, pin_point, pinned_any
from app_pages.ui.text import notices
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.work import LIMITS, limit_message, reduced, run_heavy
from app_pages.ui.settings import settings
from rnnviz import CheckpointError, TextError
from rnnviz.serving import cost
from rnnviz import compare as C
from rnnviz.plots import compare as PC
from rnnviz.ref import ModelRef

ctx = context()
view_params("cmp.")


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)   # each holds every H_t of 2–3 models
def comparison(refs: tuple[ModelRef, ...], labels: tuple[str, ...], text: str,
               _models: tuple) -> C.Comparison:
    """The aligned comparison of ``text`` through the models ``_models`` (identified by ``refs``,
    shown as ``labels``; traces from the shared cache)."""
    models = dict(zip(labels, _models))
    traces = {lab: cached_trace(ref, m, text) for lab, ref, m in zip(labels, refs, _models)}
    return C.compare(text, models, traces)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def gradient_curves(refs: tuple[ModelRef, ...], labels: tuple[str, ...], text: str, max_chars: int,
                    _models: tuple) -> list[C.GradientCurve]:
    cmp = comparison(refs, labels, text, _models)
    return run_heavy("norm_curve", C.gradient_curves, cmp, {run.name: m for run, m in zip(cmp.runs, _models)},
                     max_chars=max_chars)


def _plans(models: tuple, op: str, steps: int, what: str) -> cost.Plan:
    """The cost model's plan for ``op`` on the most expensive of ``models``."""
    budget = settings().request_seconds
    return min((cost.fit(op, m.config, steps, what=what, request_seconds=budget) for m in models),
               key=lambda p: p.steps)


def _models_of(names: list[str]) -> tuple[tuple[ModelRef, ...], tuple[str, ...], tuple]:
    """(refs, labels, models) of the chosen checkpoints (uploads labelled by file name)."""
    models = tuple(get_model(n) for n in names)
    refs = tuple(get_ref(n, m) for n, m in zip(names, models))
    return refs, tuple(uploads.get(n, n) for n in names), models


def pinned_unit(cmp: C.Comparison, pin: Pin, start: int, width: int, saes: dict) -> None:
    """The pinned unit (#28 "follow one unit") or dictionary feature (#29) in every compared model
    that has it, a note for the others. ``saes``: run name → that model's SAE on the pin's state."""
    name, what = pin.name, "feature" if pin.feature else "unit"
    st.subheader(f"★ Pinned {what} {name}")
    series = (C.feature_series(cmp, pin.layer, pin.state, pin.index, saes) if pin.feature
              else C.unit_series(cmp, *pin.unit))
    if any(s.values is not None for s in series):
        show_chart(PC.unit_lines(series, name, start, width), ctx, "cmp_pinned")
        st.caption("Each model's own sparse autoencoder: feature indices of SAEs trained apart name "
                   "unrelated directions." if pin.feature else
                   "Same layer, state and index in each model: in models trained apart, one index "
                   "names unrelated units (compare a model with its own training steps to follow one).")
    for s in series:
        if s.values is None:
            st.info(f"{s.name} {s.note}: {name} is not drawn for it.")


st.title("Compare checkpoints")
with explanation("compare"):
    st.markdown("The same text through two or three models side by side: hidden states H_t, the "
                "surprisal −log P(next char) of every character, and a summary. Typical question: how "
                "do a plain RNN, a GRU and an LSTM trained on the same corpus read the same sentence? "
                "Or the layers of one deep model side by side: how does depth change what a layer "
                "holds and how its gradient decays?")

uploads = st.session_state.get("upload_names", {})
available = shipped_names() + list(uploads)
MODES = {"models": "checkpoints", "layers": "layers of one model"}
use("cmp.what")
with controls("cmp-what"):
    mode = st.radio("Compare", list(MODES), format_func=MODES.get, horizontal=True, key="c_what")
sync("cmp.what")
if mode == "layers":
    if notices(ctx):
        layers_of_one_model(ctx, uploads)
    st.stop()

# A checkpoint that disappeared (or an upload from another session) must not break the widget.
use("cmp.models", available=available, default=C.default_selection(available, ctx.model_key))
with controls("cmp"):
    names = st.multiselect("Checkpoints (2–3)", available, max_selections=C.MAX_MODELS,
                           format_func=lambda k: uploads.get(k, k), key="c_models")
sync("cmp.models")

if len(names) < 2:
    st.info("Pick at least two checkpoints to compare (up to three).")
elif notices(ctx):
    try:
        with st.spinner("Tracing the text through each model…"):
            refs, labels, models = _models_of(names)
            plan = _plans(models, "trace", len(ctx.text), "comparison")
            cmp = comparison(refs, labels, ctx.text[:plan.steps], models)
    except LIMITS as err:
        st.warning(limit_message("comparison", err))
    except (CheckpointError, TextError, ValueError) as err:
        st.error(f"Cannot compare: {err}")
    else:
        reduced(plan)
        with explanation("compare-notes"):          # lecture mode: the teacher says it
            for note in cmp.notes:
                st.info(note)

        st.subheader("Summary")
        st.dataframe(cmp.table, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("cross-entropy (nats/char)", "bits/char", "perplexity",
                                              "bits/char (common)", "val loss (training)")})
        with explanation("compare-summary"):
            st.caption("Cross-entropy, bits/char and perplexity are on the text each model reads. "
                       "'bits/char (common)' averages only the positions where every model predicted the "
                       "same, unchanged, in-vocabulary character: the fairest single number here.")

        st.subheader("Surprisal per character")
        show_chart(PC.surprisal_lines(cmp), ctx, "cmp_surprisal")
        with st.expander("What each model did with each position"):
            st.dataframe(C.flag_counts(cmp), width="stretch")

        st.subheader("Hidden states H_t")
        longest = max(len(r.chars) for r in cmp.runs)
        layers = {"top": "top layer h"}
        for r in cmp.runs:
            for key in r.states:
                layers.setdefault(key, key)
        width = min(PC.MAX_WINDOW, longest, 200)
        use("cmp.state", "cmp.start", "cmp.units", layers=layers, last_start=max(longest - width, 0))
        with controls("cmp-states", navigation=True):
            c1, c2, c3 = st.columns([2, 3, 2])
            state = c1.selectbox("state", list(layers), format_func=layers.get, key="c_state")
            if longest > width:
                start = c2.slider("window start (step)", 0, longest - width, key="c_start",
                                  help=f"Each panel shows {width} steps of its model's own text.")
            else:
                start = 0
                c2.caption(f"All {longest} steps shown.")
            max_units = c3.slider("units per panel (highest variance)", 8, 128, step=8, key="c_units")
        sync("cmp.state", "cmp.start", "cmp.units")
        show_chart(PC.hidden_small_multiples(cmp, state, start, width, max_units), ctx, "cmp_states",
                   on_click=pin_point)
        st.caption("One shared colour scale centred on 0 (blue negative, red positive). Each panel uses "
                   "its model's own text: a d2l-cleaned model reads a shorter, lower-case text. "
                   "Click a row to pin its unit.")
        if (pin := pinned_any()) is not None:
            saes = {lab: saes_for(n, r).get((pin.layer, pin.state)) for n, r, lab in zip(names, refs, labels)} \
                if pin.feature else {}
            pinned_unit(cmp, pin, start, width, saes)

        st.subheader("Gradient norms")
        st.markdown("‖∂ℓ/∂H_t‖ of the top layer for the loss ℓ of the last prediction, against how "
                    "many steps back H_t is. A straight line on this log scale means a constant "
                    "per-step factor: below 1 the gradient vanishes exponentially.")
        try:
            grad_plan = _plans(models, "norm_curve", C.GRAD_MAX_CHARS, "gradient curves")
            curves = gradient_curves(refs, labels, ctx.text[:plan.steps], grad_plan.steps, models)
        except LIMITS as err:
            st.warning(limit_message("gradient curves", err))
        except ImportError:
            st.info("Gradient curves appear here once rnnviz.gradients is available; meanwhile see "
                    "the Gradients view for one model.")
        except ValueError as err:
            st.info(f"No gradient curves: {err}")
        else:
            reduced(grad_plan)
            show_chart(PC.gradient_curves({c.name: (c.distance, c.norms) for c in curves},
                                                 x_title="steps back from the last prediction",
                                                 y_title="‖∂ℓ/∂H_t‖ (top layer)"), ctx, "cmp_grads")
            st.dataframe(
                [{"checkpoint": c.name, "per-step factor (fit)": round(c.factor, 4),
                  "steps to shrink 100×": round(c.steps_to_1pct, 1), "exact zeros (underflow)": c.zeros,
                  "characters used": c.chars_used} for c in curves],
                hide_index=True, width="stretch")
            st.caption(f"Each curve uses the last {C.GRAD_MAX_CHARS:,} characters (at most) of the text its "
                       "model reads. Computed by rnnviz.gradients (see the Gradients view for the knobs).")
