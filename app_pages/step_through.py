"""Step-through: the book's recurrence at one step t, with the actual vectors."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import context
from app_pages.ui.text import md, notices
from app_pages.ui.url import keep_choice, keep_int, url_default, url_set, view_params
from rnnviz import views
from rnnviz.plots import predictions as pplots
from rnnviz.plots import stepthrough as stplots
from rnnviz.plots.common import display_char

#: Hidden sizes up to this are shown in full; larger ones show the units with the largest |H_t|.
FULL_UNITS = 16
PLAY_SECONDS = 1.0

EQUATIONS = {
    "rnn_tanh": [r"H_t = \tanh(X_t W_{xh} + H_{t-1} W_{hh} + b_h)"],
    "rnn_relu": [r"H_t = \mathrm{ReLU}(X_t W_{xh} + H_{t-1} W_{hh} + b_h)"],
    "gru": [r"R_t = \sigma(X_t W_{xr} + H_{t-1} W_{hr} + b_r) \qquad Z_t = \sigma(X_t W_{xz} + H_{t-1} W_{hz} + b_z)",
            r"\tilde H_t = \tanh\big(X_t W_{xh} + b_h + R_t \odot (H_{t-1} W_{hh} + b_{hh})\big)",
            r"H_t = Z_t \odot H_{t-1} + (1 - Z_t) \odot \tilde H_t"],
    "lstm": [r"I_t = \sigma(X_t W_{xi} + H_{t-1} W_{hi} + b_i) \quad F_t = \sigma(X_t W_{xf} + H_{t-1} W_{hf} + b_f) \quad O_t = \sigma(X_t W_{xo} + H_{t-1} W_{ho} + b_o)",
             r"\tilde C_t = \tanh(X_t W_{xc} + H_{t-1} W_{hc} + b_c) \qquad C_t = F_t \odot C_{t-1} + I_t \odot \tilde C_t \qquad H_t = O_t \odot \tanh(C_t)"],
}
OUTPUT = r"O_t = H_t W_{hq} + b_q \qquad P(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(O_t)"

ctx = context()
view_params("st.")
st.title("Step-through")
if not notices(ctx):
    st.stop()

tr = ctx.trace
model = ctx.model
cfg = model.config
T, H, L = len(tr), cfg.hidden_size, cfg.num_layers
tokens = list(tr.tokens)

url_default("st_t", "st.t", 0, int, lambda v: 0 <= v < T)
url_default("st_layer", "st.layer", 0, int, lambda v: 0 <= v < L)
keep_int("st_t", 0, T - 1, 0)
keep_choice("st_layer", list(range(L)), 0)

c1, c2 = st.columns([1, 4])
with c1, controls("st"):
    layer = st.selectbox("Layer", list(range(L)), key="st_layer", disabled=L == 1)
with c2, st.container(key="stepper-play"):   # stays visible in lecture mode: it is the lesson
    playing = st.toggle("▶ Play (advance one step per second)", key="st_play", disabled=T < 2)
url_set("st.layer", layer)

for line in EQUATIONS[cfg.cell]:
    st.latex(line)
if cfg.cell == "gru":
    st.caption("GRU in PyTorch's form (what this model computes): R_t multiplies H_{t-1} W_hh + b_hh "
               "after the product; the book puts R_t ⊙ H_{t-1} inside it and has no b_hh.")
st.latex(OUTPUT)
if layer > 0:
    st.caption(f"Layer {layer} reads H_t of layer {layer - 1} in place of the one-hot X_t.")


def render_step() -> None:
    if playing and T > 1:
        st.session_state["st_t"] = (keep_int("st_t", 0, T - 1, 0) + 1) % T
    with st.container(key="stepper"):        # visible in lecture mode too
        if T > 1:
            t = st.slider("Step t", 0, T - 1, key="st_t")
        else:
            t = 0
    url_set("st.t", t)
    ch = tr.chars[t]
    prev = ("the start (H₋₁ = 0)" if t == 0
            else f"step {t - 1} ({md(repr(display_char(tr.chars[t - 1])))})")
    st.markdown(f"**Step {t}**: the network reads {md(repr(display_char(ch)))} "
                f"{'(unknown: read as <unk>) ' if t in tr.unknown_positions else ''}after {prev}.")
    terms = views.step_terms(model, tr, layer, t)
    h_t = terms["H_t"]
    units = views.top_units(h_t, FULL_UNITS)
    left, right = st.columns([3, 2])
    with left:
        if layer == 0:
            x = model.one_hot(tr.ids[t:t + 1])[0]
            show_chart(stplots.onehot_figure(x, tokens, font_size=ctx.font_size,
                                                    title=f"X_t: one-hot of {display_char(ch)!r} "
                                                          f"(1 × {len(tokens)})"),
                              ctx, key="st_onehot")
        else:
            show_chart(stplots.vector_figure(tr[f"layer{layer - 1}.h"][t], font_size=ctx.font_size,
                                                    title=f"Input: H_t of layer {layer - 1}"),
                              ctx, key="st_input")
        which = "all units" if H <= FULL_UNITS else f"the {len(units)} of {H} units with the largest |H_t|"
        show_chart(stplots.terms_figure(terms, units, font_size=ctx.font_size,
                                               title=f"Every term at step {t}, layer {layer}"),
                          ctx, key="st_terms")
        st.caption(f"Rows: {which}. Columns: the terms of the equations above, left to right.")
        err = float((h_t - tr[f"layer{layer}.h"][t]).abs().max())
        st.caption(f"H_t recomputed from the equation with model.textbook_params({layer}) matches "
                   f"the traced H_t to {err:.1e}.")
    with right:
        out = views.step_output(model, tr, t)
        nid = int(tr.ids[t + 1]) if t + 1 < T else None
        show_chart(pplots.step_distribution(out["softmax"], tokens, next_id=nid, top=15,
                                                   title="softmax(O_t): P(next character)",
                                                   font_size=ctx.font_size), ctx, key="st_softmax")
        if nid is not None:
            st.caption(f"The next character was {md(repr(display_char(tr.chars[t + 1])))} (red), "
                       f"P = {float(out['softmax'][nid]):.4f}.")
        top = views.top_predictions(out["softmax"], 10)
        st.dataframe({"next": [pplots.token_labels(tokens)[i] for i in top],
                      "O_t (logit)": [round(float(out["O_t"][i]), 4) for i in top],
                      "softmax": [round(float(out["softmax"][i]), 4) for i in top]}, hide_index=True)


st.fragment(render_step, run_every=PLAY_SECONDS if playing and T > 1 else None)()
