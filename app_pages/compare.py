"""Compare: the same text through two or three checkpoints side by side. Wiring only: numbers from
rnnviz.compare (and rnnviz.gradients when present), figures from rnnviz.plots.compare."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.cache import cached_trace, get_model, shipped_names
from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import context
from app_pages.ui.text import notices
from app_pages.ui.url import url_default, url_set, view_params
from rnnviz import CheckpointError, TextError
from rnnviz import compare as C
from rnnviz.plots import compare as PC

ctx = context()
view_params("cmp.")


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)   # each holds every H_t of 2–3 models
def comparison(names: tuple[str, ...], text: str) -> C.Comparison:
    """The aligned comparison of ``text`` through the named models (traces from the shared cache)."""
    uploads = st.session_state.get("upload_names", {})
    label = {n: uploads.get(n, n) for n in names}          # uploads by file name, not by digest
    models = {label[n]: get_model(n) for n in names}
    traces = {label[n]: cached_trace(n, text) for n in names}
    return C.compare(text, models, traces)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def gradient_curves(names: tuple[str, ...], text: str) -> list[C.GradientCurve]:
    cmp = comparison(names, text)
    return C.gradient_curves(cmp, {run.name: get_model(n) for run, n in zip(cmp.runs, names)})


st.title("Compare checkpoints")
st.markdown("The same text through two or three models side by side: hidden states H_t, the "
            "surprisal −log P(next char) of every character, and a summary. Typical question: how "
            "do a plain RNN, a GRU and an LSTM trained on the same corpus read the same sentence?")

uploads = st.session_state.get("upload_names", {})
available = shipped_names() + list(uploads)


def _parse_models(raw: str) -> list[str]:
    return [n for n in raw.split(",") if n in available][: C.MAX_MODELS]


url_default("c_models", "cmp.models", C.default_selection(available, ctx.model_key), _parse_models,
                   lambda v: len(v) > 0)
# A checkpoint that disappeared (or an upload from another session) must not break the widget.
st.session_state["c_models"] = [n for n in st.session_state["c_models"] if n in available][: C.MAX_MODELS]
with controls("cmp"):
    names = st.multiselect("Checkpoints (2–3)", available, max_selections=C.MAX_MODELS,
                           format_func=lambda k: uploads.get(k, k), key="c_models")
url_set("cmp.models", ",".join(names))

if len(names) < 2:
    st.info("Pick at least two checkpoints to compare (up to three).")
elif notices(ctx):
    try:
        with st.spinner("Tracing the text through each model…"):
            cmp = comparison(tuple(names), ctx.text)
    except (CheckpointError, TextError, ValueError) as err:
        st.error(f"Cannot compare: {err}")
    else:
        for note in cmp.notes:
            st.info(note)

        st.subheader("Summary")
        st.dataframe(cmp.table, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("cross-entropy (nats/char)", "bits/char", "perplexity",
                                              "bits/char (common)", "val loss (training)")})
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
        url_default("c_state", "cmp.state", "top", str, lambda v: v in layers)
        url_default("c_start", "cmp.start", 0, int, lambda v: 0 <= v <= longest - width)
        url_default("c_units", "cmp.units", 64, int, lambda v: 8 <= v <= 128 and v % 8 == 0)
        if st.session_state["c_state"] not in layers:
            st.session_state["c_state"] = "top"
        if st.session_state["c_start"] > longest - width:
            st.session_state["c_start"] = 0
        with controls("cmp-states"):
            c1, c2, c3 = st.columns([2, 3, 2])
            state = c1.selectbox("state", list(layers), format_func=layers.get, key="c_state")
            if longest > width:
                start = c2.slider("window start (step)", 0, longest - width, key="c_start",
                                  help=f"Each panel shows {width} steps of its model's own text.")
            else:
                start = 0
                c2.caption(f"All {longest} steps shown.")
            max_units = c3.slider("units per panel (highest variance)", 8, 128, step=8, key="c_units")
        url_set("cmp.state", state)
        url_set("cmp.start", start)
        url_set("cmp.units", max_units)
        show_chart(PC.hidden_small_multiples(cmp, state, start, width, max_units), ctx, "cmp_states")
        st.caption("One shared colour scale centred on 0 (blue negative, red positive). Each panel uses "
                   "its model's own text: a d2l-cleaned model reads a shorter, lower-case text.")

        st.subheader("Gradient norms")
        st.markdown("‖∂ℓ/∂H_t‖ of the top layer for the loss ℓ of the last prediction, against how "
                    "many steps back H_t is. A straight line on this log scale means a constant "
                    "per-step factor: below 1 the gradient vanishes exponentially.")
        try:
            curves = gradient_curves(tuple(names), ctx.text)
        except ImportError:
            st.info("Gradient curves appear here once rnnviz.gradients is available; meanwhile see "
                    "the Gradients view for one model.")
        except ValueError as err:
            st.info(f"No gradient curves: {err}")
        else:
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
