"""Lesson §6.3: a guided, measured walk through the RNN section (d2l notation). Wiring only:
every number comes from rnnviz.lesson, every figure from rnnviz.plots.lesson."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from app_pages.ui.charts import controls, show_chart
from app_pages.ui.context import context
from app_pages.ui.lecture import explanation
from app_pages.ui.text import md, model_note, notices
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.work import LIMITS, limit_message, reduced, run_heavy
from app_pages.ui.settings import settings
from rnnviz.serving import cost
from rnnviz import lesson as L
from rnnviz.plots import lesson as PL
from rnnviz.plots.common import display_char
from rnnviz.ref import ModelRef

ctx = context()
view_params("lesson.")


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def word_attribution(hidden: int, seed: int, steps: int) -> L.WordAttribution:
    return L.word_step_through(hidden, seed, steps)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def bigram(text: str) -> L.BigramResult:
    res = L.bigram_exact_rnn(text)
    res.model = None            # keep the cache small; the numbers are all in the result
    return res


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def forgetting(ref: ModelRef, text: str, position: int, char: str, threshold: float,
               relative: bool, _model) -> L.Forgetting:
    return run_heavy("forward2", L.counterfactual_forgetting, _model, text, position, char, threshold, relative)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def gradient_presets(ref: ModelRef, text: str, max_chars: int, _model) -> list[dict]:
    return run_heavy("presets", L.measure_gradient_presets, _model, text, max_chars=max_chars)


def _row(t: torch.Tensor, digits: int = 3) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in t.reshape(-1).tolist()) + "]"


def _forgetting_demo() -> None:
    if not notices(ctx):
        return
    seen = ctx.trace.text
    if len(seen) < 2:
        extra = (f" (this model reads {len(seen)} after its preprocessing)" if ctx.trace.preprocessed else "")
        st.info(f"The counterfactual needs a text of at least 2 characters{extra}: type more in the sidebar.")
        return
    top = len(seen) - 2
    use("lesson.pos", "lesson.char", top=top, char="a" if seen[0] != "a" else "e")
    with controls("lesson-forget"):
        c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
        if top > 0:
            pos = c1.slider("position of the edited character", 0, top, key="l_cfpos")
        else:
            pos = 0
            c1.caption("Editing the first character (the text has 2 characters).")
        new = c2.text_input(f"replace “{md(display_char(seen[pos]))}” by", max_chars=1, key="l_cfchar")
        thr = c3.number_input("threshold", min_value=1e-6, max_value=10.0, value=0.01, format="%.4f",
                              key="l_cfthr")
        rel = c4.checkbox("relative to ‖H_t‖", value=True, key="l_cfrel")
    sync("lesson.pos", *(("lesson.char",) if new else ()))
    if not new:
        st.info("Type one replacement character.")
        return
    try:
        plan = cost.fit("forward2", ctx.model.config, len(ctx.text), what="counterfactual",
                        minimum=pos + 2, request_seconds=settings().request_seconds)
        fg = forgetting(ctx.ref, ctx.text[:plan.steps], pos, new, float(thr), bool(rel), ctx.model)
    except LIMITS as err:
        st.warning(limit_message("counterfactual", err))
        return
    except ValueError as err:
        st.error(str(err))
        return
    reduced(plan)
    c1, c2, c3 = st.columns(3)
    c1.metric("largest ‖H_t − H′_t‖", f"{fg.max_distance:.3g}")
    c2.metric("forgotten after", f"{fg.steps_to_forget} steps" if fg.steps_to_forget is not None
              else "not within the text")
    c3.metric("prediction change at the end (KL, nats)", f"{float(fg.output_change[-1]):.3g}")
    if fg.unknown_new:
        st.warning("The replacement character is not in this model's vocabulary: it is read as ⟨unk⟩.")
    if ctx.trace.preprocessed:
        st.caption("Positions refer to the text as this model reads it (after its preprocessing).")
    show_chart(PL.forgetting_figure(fg), ctx, "lesson_forget")
    st.caption("The distance is over all layers' H_t (LSTM: the hidden h, not the cell c). "
               "‘Forgotten’ = the first step from which the difference stays below the threshold "
               "until the end of the text. A plain RNN typically forgets within a few dozen "
               "characters; gated cells (GRU/LSTM) can keep an edit much longer.")


st.title("Lesson §6.3 — Recurrent neural networks")
model_note(ctx)
with explanation("lesson"):
    st.markdown(
        "An RNN keeps a **hidden state** $H_t$ that summarises everything read so far. At every step it "
        "mixes the new input $X_t$ with the previous state $H_{t-1}$, then scores the next token from $H_t$. "
        "In the book's notation (one row vector per step, weights multiplied on the right):")
st.latex(r"H_t = \phi(X_t W_{xh} + H_{t-1} W_{hh} + b_h), \qquad O_t = H_t W_{hq} + b_q, "
         r"\qquad P(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(O_t)")
st.caption("Shapes: $X_t$ 1×d · $W_{xh}$ d×h · $H_t$ 1×h · $W_{hh}$ h×h · $b_h$ 1×h · $W_{hq}$ h×q · "
           "$b_q$ 1×q. "
           "The same weights are used at every step — that is what makes it *recurrent*.")

TABS = ("(a) Toy network: ReLU vs tanh", "(b) “the time machine by”", "(c) The four problems of §6.3.5")
use("lesson.tab", tabs=TABS)     # the open tab is in the link like every other setting
tab_a, tab_b, tab_c = st.tabs(list(TABS), key="l_tab", on_change="rerun")
sync("lesson.tab")

# ============================================================================ (a) toy network
with tab_a:
    st.subheader("(a) A toy RNN you can compute by hand")
    st.markdown(
        "Three time steps of **one real-valued feature** (X is 3×1), **two hidden units** "
        "(H is 3×2) and **three outputs**. The activation φ is applied to *both* layers, as in "
        "the seed example: $H_t = \\phi(X_t W_{xh} + H_{t-1} W_{hh} + b_h)$ and "
        "$O_t = \\phi(H_t W_{hq} + b_q)$, with $H_0 = 0$.")
    acts, presets = list(L.ACTIVATIONS), list(L.TOY_PRESETS)
    use("lesson.act", "lesson.toy", acts=acts, presets=presets)
    with controls("lesson-toy"):
        c1, c2 = st.columns(2)
        act = c1.radio("Activation φ", acts, format_func={"relu": "ReLU", "tanh": "tanh"}.get,
                       horizontal=True, key="l_act")
        preset = c2.radio("Example weights", presets, horizontal=True, key="l_preset",
                          format_func={"dead": "dead (W_xh < 0)", "alive": "alive (mixed signs)"}.get)
    sync("lesson.act", "lesson.toy")
    base = L.TOY_PRESETS[preset]
    values = {}
    with controls("lesson-toy-values"), st.expander("Edit the values (X, W_xh, W_hh, b_h, W_hq, b_q)"):
        cols = st.columns(3)
        for k, (name, shape) in enumerate(L.TOY_SHAPES.items()):
            with cols[k % 3]:
                st.markdown(f"**{name}** ({shape[0]}×{shape[1]})")
                df = pd.DataFrame(base[name], columns=[str(j + 1) for j in range(shape[1])])
                edited = st.data_editor(df, key=f"l_toy_{preset}_{name}", num_rows="fixed",
                                        width="stretch")
                values[name] = edited.to_numpy(dtype=float, na_value=float("nan"))
    try:
        res = L.run_toy(values, act)
        other = L.run_toy(values, "tanh" if act == "relu" else "relu")
    except L.ToyInputError as err:
        st.error(f"Cannot run the toy network: {err}")
    else:
        st.latex(r"\underbrace{X_t}_{1\times1}\,\underbrace{W_{xh}}_{1\times2} + "
                 r"\underbrace{H_{t-1}}_{1\times2}\,\underbrace{W_{hh}}_{2\times2} + "
                 r"\underbrace{b_h}_{1\times2} = \underbrace{A_t}_{1\times2} \;\to\; "
                 r"H_t = \phi(A_t) \;\to\; \underbrace{H_t}_{1\times2}\,\underbrace{W_{hq}}_{2\times3} + "
                 r"\underbrace{b_q}_{1\times3} = \underbrace{Z_t}_{1\times3} \;\to\; O_t = \phi(Z_t)")
        show_chart(PL.toy_figure(res), ctx, "lesson_toy", text_independent=True)
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("H all zero", "yes" if res.H_all_zero else "no")
        m2.metric("O all zero", "yes" if res.O_all_zero else "no")
        m3.metric("dead hidden units", ", ".join(str(j + 1) for j in res.dead_units) or "none")
        m4.metric("Σ ‖∂L/∂W‖", f"{sum(res.grad_norms.values()):.3g}")
        for line in res.explanation:
            st.markdown(f"- {line}")
        other_name = "tanh" if act == "relu" else "ReLU"
        st.info(f"Same values with **{other_name}**: H all zero = {'yes' if other.H_all_zero else 'no'}, "
                f"O all zero = {'yes' if other.O_all_zero else 'no'}, "
                f"Σ‖∂L/∂W‖ = {sum(other.grad_norms.values()):.3g}. Switch φ above to see it.")
        with st.expander("Step by step, with shapes"):
            rows = [{"t": s.t, "X_t (1×1)": _row(s.X_t), "X_t W_xh (1×2)": _row(s.XW),
                     "H_{t-1} W_hh (1×2)": _row(s.HW), "A_t (1×2)": _row(s.A_t), "H_t (1×2)": _row(s.H_t),
                     "Z_t (1×3)": _row(s.Z_t), "O_t (1×3)": _row(s.O_t)} for s in res.steps]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("Loss for the gradient: Σ_t cross-entropy(O_t, class t). "
                       + ", ".join(f"‖∂L/∂{k}‖ = {v:.3g}" for k, v in res.grad_norms.items()))

# ============================================================================ (b) words
with tab_b:
    st.subheader("(b) Word by word: how O₃ depends on “the”, “time”, “machine”")
    st.markdown(
        "A tiny **word-level** RNN: the vocabulary is just ⟨unk⟩, *the*, *time*, *machine*, *by* "
        "(so $X_t$ is a one-hot of length 5). It is trained on the one phrase, so that after "
        "reading *the time machine* it should predict *by*. Unrolled, $O_3$ depends on all three "
        "words — but through different numbers of $W_{hh}$ multiplications:")
    st.latex(r"O_3 = \phi\big(X_3 W_{xh} + \phi\big(X_2 W_{xh} + \phi(X_1 W_{xh} + b_h)\,W_{hh} + b_h\big)"
             r"\,W_{hh} + b_h\big)\,W_{hq} + b_q")
    use("lesson.h", "lesson.steps", "lesson.seed")
    with controls("lesson-words"):
        c1, c2, c3 = st.columns(3)
        hidden = c1.slider("hidden units h", 2, 16, key="l_wh")
        steps = c2.slider("training steps (0 = untrained)", 0, 400, step=10, key="l_ws")
        seed = int(c3.number_input("seed", 0, 999, key="l_wseed"))
    sync("lesson.h", "lesson.steps", "lesson.seed")
    with st.spinner("Training the word RNN…"):
        wa = word_attribution(hidden, seed, steps)
    rows = [{"t": t + 1, "word": w, "X_t (1×5)": _row(torch.nn.functional.one_hot(torch.tensor(t + 1), 5), 0),
             f"H_t (1×{hidden})": _row(wa.H[t])} for t, w in enumerate(wa.words)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Training: {steps} Adam steps on the phrase; final cross-entropy {wa.final_loss:.4f} nats.")
    c1, c2 = st.columns([2, 3])
    with c1:
        st.markdown(f"**softmax(O₃)** — P(by | the time machine) = **{wa.P_3[4]:.3f}**")
        show_chart(PL.word_probs_figure(wa), ctx, "lesson_word_probs", text_independent=True)
    with c2:
        st.markdown("**Attribution of the score O₃[by] to each earlier word** (measured)")
        show_chart(PL.word_attribution_figure(wa), ctx, "lesson_word_attr", text_independent=True)
    top = max(range(3), key=lambda t: wa.grad_norm[t])
    ratio = wa.grad_norm[top] / max(wa.grad_norm[0], 1e-12)
    st.markdown(
        f"Measured: O₃[by] is most sensitive to **{wa.words[top]}** (‖∂O₃[by]/∂X_t‖ = "
        f"{wa.grad_norm[top]:.3g}), {ratio:.3g}× more than to **the** ({wa.grad_norm[0]:.3g}). "
        "Replacing a word by the zero vector (ablation, X_t = 0) "
        + "; ".join(L.ablation_effects(wa)) + " — the ablation bars show the contribution "
        "O₃[by] − O₃[by](X_t = 0), so a positive bar means zeroing the word lowers the score. "
        "Earlier words reach O₃ only through repeated multiplication by W_hh and φ′, which is "
        "why their influence tends to be smaller — try untrained weights, more units or another seed.")

# ============================================================================ (c) problems
with tab_c:
    st.subheader("(c) The four problems of §6.3.5, as experiments")

    # --- 1 -------------------------------------------------------------------------------
    st.markdown("#### 1 · How many outputs does a character-level RNN need?")
    info = L.output_size(ctx.model)
    st.markdown(
        "One score per token it could predict: $q = |V|$. $O_t = H_t W_{hq} + b_q$, so $W_{hq}$ is "
        "$h \\times |V|$ and $b_q$ is $1 \\times |V|$. For the loaded checkpoint (read from the model itself):")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("|V| = outputs", info["vocab_size"])
    c2.metric("W_hq", f"{info['W_hq'][0]}×{info['W_hq'][1]}")
    c3.metric("b_q", f"1×{info['b_q'][0]}")
    c4.metric("output-layer parameters", f"{info['output_parameters']:,}")
    tokens = " ".join(md(display_char(t)) for t in info["tokens"])
    st.caption(f"Preprocessing '{info['preprocessing']}'. Vocabulary (⟨unk⟩ first, then by frequency): "
               f"{tokens}" + (" — d2l cleaning leaves 26 letters + space + ⟨unk⟩ = 28."
                             if info["preprocessing"] == "d2l" else ""))

    # --- 2 -------------------------------------------------------------------------------
    st.markdown("#### 2 · An RNN that is *exact* on a finite set: bigram counts")
    st.markdown(
        "With h = |V| hidden units we can *construct* (not train) an RNN whose hidden state is the "
        "one-hot of the character just read, and whose output layer holds the log of the counted "
        "bigram probabilities. Then softmax(O_t) reproduces the counts exactly:")
    st.latex(r"W_{xh} = I,\; W_{hh} = 0,\; b_h = 0,\; \phi = \mathrm{ReLU} \;\Rightarrow\; "
             r"H_t = X_t \text{ (one-hot of the character } i \text{ just read)}")
    st.latex(r"(W_{hq})_{ij} = \log \hat P(j \mid i),\; b_q = 0 \;\Rightarrow\; "
             r"\mathrm{softmax}(O_t)_j = \frac{\hat P(j\mid i)}{\sum_k \hat P(k\mid i)} = \hat P(j \mid i)")
    with controls("lesson-bigram"):
        btext = st.text_area("Text to count bigrams in (defaults to the sidebar text)",
                             value=ctx.text[:L.MAX_BIGRAM_CHARS],
                             key="l_bigram_text", height=80, max_chars=L.MAX_BIGRAM_CHARS)
    try:
        bg = bigram(btext)
    except ValueError as err:
        st.info(str(err))
    else:
        c1, c2, c3 = st.columns(3)
        c1.metric("max |softmax(O) − counted P|", f"{bg.max_abs_error:.2e}")
        c2.metric("… along the text", f"{bg.max_abs_error_along_text:.2e}")
        c3.metric("cross-entropy: RNN vs counted", f"{bg.rnn_cross_entropy:.4f} / {bg.bigram_cross_entropy:.4f}")
        st.caption(f"|V| = {len(bg.tokens)} (from this text), so h = {len(bg.tokens)} and W_hq is "
                   f"{len(bg.tokens)}×{len(bg.tokens)}. Never-seen pairs get log P = {bg.log_floor:g} "
                   "(exp underflows to exactly 0); a character never followed by anything (e.g. the last one) "
                   "gets a uniform row. The error is float32 rounding. The catch: this is "
                   "exact only on the text it was counted on, and remembers just one character.")
        show_chart(PL.bigram_figure(bg), ctx, "lesson_bigram")

    # --- 3 -------------------------------------------------------------------------------
    st.markdown("#### 3 · What happens to gradients over long chains?")
    st.markdown(
        "Backpropagating from step t to step k multiplies t − k Jacobians (below). "
        "If their norms are below 1 the product vanishes "
        "exponentially; above 1 it explodes. The **Gradients** view measures this on the loaded "
        "model; these links open it with W_hh scaled (on a copy of the model):")
    st.latex(r"\frac{\partial H_t}{\partial H_k} = \prod_{j=k+1}^{t} "
             r"\mathrm{diag}\big(\phi'(X_j W_{xh} + H_{j-1} W_{hh} + b_h)\big)\, W_{hh}^\top")
    try:
        plan = cost.fit("presets", ctx.model.config, 200, what="measurement of the three presets",
                        request_seconds=settings().request_seconds)
        measured = gradient_presets(ctx.ref, ctx.text, plan.steps, ctx.model)
        reduced(plan)
    except LIMITS as err:
        measured = None
        st.warning(limit_message("measurement of the three presets", err))
    except ImportError:
        measured = None
    except ValueError as err:        # e.g. a text under 2 characters
        measured = None
        st.caption(f"No measurement: {err}")
    cols = st.columns(len(L.GRADIENT_PRESETS))
    for k, (col, (label, params)) in enumerate(zip(cols, L.GRADIENT_PRESETS.items())):
        with col:
            st.page_link("app_pages/gradients.py", label=label, icon=":material/show_chart:",
                         query_params={"ckpt": ctx.model_key, **params})
            if measured:
                m = measured[k]
                kind = "vanishing" if m["factor"] < 1 else "exploding"
                st.caption(f"Measured on this model and text: **{kind}**, ‖∂ℓ/∂H_t‖ × {m['factor']:.3g} "
                           f"per step (100× in {m['steps_to_100x']:.0f} steps).")

    # --- 4 -------------------------------------------------------------------------------
    st.markdown("#### 4 · Limits of the simple model: what does it forget?")
    st.markdown(
        "Change one early character and run both texts. If the state still differs many steps "
        "later, the model remembers the edit; once $\\lVert H_t - H'_t \\rVert$ stays below a threshold, the "
        "edit is forgotten. This is the loaded checkpoint on the sidebar text.")
    _forgetting_demo()
