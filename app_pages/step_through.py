"""Step-through: the book's recurrence at one step t, with the actual vectors."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import context
from app_pages.ui.features import current_pin, pin_values
from app_pages.ui.pin import Pin, pin_point
from app_pages.ui.text import md, notices
from app_pages.ui.url import sync, use, view_params
from rnnviz import views
from rnnviz.plots import predictions as pplots
from rnnviz.plots import stepthrough as stplots
from rnnviz.plots.common import display_char
from rnnviz.names import act_name

#: Hidden sizes up to this are shown in full; larger ones show the units with the largest |H_t|.
FULL_UNITS = 16
PLAY_SECONDS = 1.0
#: The layer choice that shows every layer at the step (multi-layer models).
ALL = "all"


def layer_choices(L: int) -> list:
    """The layer selector's options: each layer, and "all" when there are several."""
    return [*range(L), ALL] if L > 1 else [0]

#: The output layer's scores. §6.3 writes them O_t; on an LSTM O_t is the output gate (the book's
#: later chapters), so there the scores get their own symbol Q_t (after W_hq and b_q).
OUTPUT_NOTE = ("Q_t: the output layer's scores, written O_t in §6.3; on an LSTM O_t is the output "
               "gate above.")


def output_latex(sym: str) -> str:
    """The output layer and the softmax, with the scores written ``sym`` (O_t or Q_t)."""
    return (sym + r" = H_t W_{hq} + b_q \qquad P(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}("
            + sym + ")")


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

use("st.t", "st.layer", T=T, L=L)

c1, c2 = st.columns([1, 4])
with c1, controls("st", navigation=True):
    layer = st.selectbox("Layer", layer_choices(L), key="st_layer", disabled=L == 1,
                         format_func=lambda v: "every layer" if v == ALL else str(v))
with c2, st.container(key="stepper-play"):   # stays visible in lecture mode: it is the lesson
    playing = st.toggle("▶ Play (advance one step per second)", key="st_play", disabled=T < 2)
sync("st.layer")

for line in model.spec.latex:          # the cell's equations (rnnviz.cells)
    st.latex(line)
if model.spec.note:
    st.caption(model.spec.note)
# The output layer's scores are O_t in §6.3; a cell with an output gate O_t (the LSTM) writes them Q_t.
OUT = "Q_t" if "o" in model.spec.gates else "O_t"
st.latex(output_latex(OUT))
if OUT != "O_t":
    st.caption(OUTPUT_NOTE)
if layer == ALL:
    st.caption("Every layer at the same step t, from the input up: layer l > 0 reads H_t of layer "
               "l − 1 in place of the one-hot X_t; the top layer's H_t feeds the output layer.")
elif layer > 0:
    st.caption(f"Layer {layer} reads H_t of layer {layer - 1} in place of the one-hot X_t.")


def layer_terms(lay: int, t: int, suffix: str, pin: Pin | None) -> None:
    """Layer ``lay`` at step t: its input, every term of its equation, and the recompute check
    (chart keys end in ``suffix``; ``pin``: the pinned unit, shown first, or feature, its value said)."""
    ch = tr.chars[t]
    terms = views.step_terms(model, tr, lay, t)
    h_t = terms["H_t"]
    mine = pin is not None and pin.on(lay, "h") is not None    # the pinned unit first (#28)
    units = views.pinned_first(views.top_units(h_t, FULL_UNITS), pin.index if mine else None, FULL_UNITS)
    if lay == 0:
        x = model.one_hot(tr.ids[t:t + 1])[0]
        show_chart(stplots.onehot_figure(x, tokens, font_size=ctx.font_size,
                                         title=f"X_t: one-hot of {display_char(ch)!r} (1 × {len(tokens)})"),
                   ctx, key="st_onehot" + suffix)
    else:
        show_chart(stplots.vector_figure(tr[act_name(lay - 1, "h")][t], font_size=ctx.font_size, layer=lay - 1,
                                         title=f"Input: H_t of layer {lay - 1}"), ctx, key="st_input" + suffix)
    which = "all units" if H <= FULL_UNITS else f"the {len(units)} of {H} units with the largest |H_t|"
    if mine:
        which += f"; the pinned unit {pin.name} first"
    show_chart(stplots.terms_figure(terms, units, font_size=ctx.font_size, layer=lay,
                                    pinned=pin.index if mine else None,
                                    title=f"Every term at step {t}, layer {lay}"), ctx, key="st_terms" + suffix,
               on_click=pin_point)
    st.caption(f"Rows: {which}. Columns: the terms of the equations above, left to right. "
               "Click a row to pin its unit (followed on every view).")
    if pin is not None and pin.feature and pin.layer == lay:     # a pinned feature (#29): its value now
        vals = pin_values(ctx, pin, tr)
        st.markdown(f"**★ Pinned feature {pin.name}** (sparse autoencoder on {act_name(lay, pin.state)}) "
                    f"at step {t}: a = **{vals[t]:.3f}** (largest on this text {max(vals):.3f}; 0 = off).")
    err = float((h_t - tr[act_name(lay, "h")][t]).abs().max())
    st.caption(f"H_t recomputed from the equation with model.textbook_params({lay}) matches "
               f"the traced H_t to {err:.1e}.")


def render_step() -> None:
    pin = current_pin(ctx)        # read in the fragment: a row clicked here reruns only this fragment
    if playing and T > 1:
        use("st.t", T=T)
        st.session_state["st_t"] = (st.session_state["st_t"] + 1) % T
    with st.container(key="stepper"):        # visible in lecture mode too
        if T > 1:
            t = st.slider("Step t", 0, T - 1, key="st_t")
        else:
            t = 0
    sync("st.t")
    ch = tr.chars[t]
    prev = ("the start (H₋₁ = 0)" if t == 0
            else f"step {t - 1} ({md(repr(display_char(tr.chars[t - 1])))})")
    st.markdown(f"**Step {t}**: the network reads {md(repr(display_char(ch)))} "
                f"{'(unknown: read as <unk>) ' if t in tr.unknown_positions else ''}after {prev}.")
    left, right = st.columns([3, 2])
    with left:
        if layer == ALL:                     # from the input up through every layer, at step t
            for lay in range(L):
                st.markdown(f"**Layer {lay}**" + (" (reads the one-hot X_t)" if lay == 0 else
                                                  f" (reads H_t of layer {lay - 1})"))
                layer_terms(lay, t, f"_l{lay}", pin)
        else:
            layer_terms(layer, t, "", pin)
    with right:
        out = views.step_output(model, tr, t)
        nid = int(tr.ids[t + 1]) if t + 1 < T else None
        show_chart(pplots.step_distribution(out["softmax"], tokens, next_id=nid, top=15,
                                                   title=f"softmax({OUT}): P(next character)",
                                                   font_size=ctx.font_size), ctx, key="st_softmax",
                   width=0.4)                       # the right column: its title wrapped to fit it
        if nid is not None:
            st.caption(f"The next character was {md(repr(display_char(tr.chars[t + 1])))} (red), "
                       f"P = {float(out['softmax'][nid]):.4f}.")
        top = views.top_predictions(out["softmax"], 10)
        st.dataframe({"next": [pplots.token_labels(tokens)[i] for i in top],
                      f"{OUT} (logit)": [round(float(out["O_t"][i]), 4) for i in top],
                      "softmax": [round(float(out["softmax"][i]), 4) for i in top]}, hide_index=True)


st.fragment(render_step, run_every=PLAY_SECONDS if playing and T > 1 else None)()
