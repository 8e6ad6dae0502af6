"""Predictions: the distribution over the next character at every step."""

from __future__ import annotations

import math

import streamlit as st

from app_pages.ui.charts import controls, show_chart, window_start
from app_pages.ui.colored_text import colored_text
from app_pages.ui.context import context
from app_pages.ui.scorecard import baseline_card
from app_pages.ui.text import md, notices
from app_pages.ui.url import sync, use, view_params
from rnnviz import views
from rnnviz.plots import predictions as pplots
from rnnviz.plots.common import SURPRISAL, display_char

WIDTHS = (20, 40, 60, 100, 200)
TEXT_MAX = 2_000

ctx = context()
view_params("pr.")
st.title("Predictions")
if not notices(ctx, shows_cleaned_text=True):
    st.stop()

tr = ctx.trace
T = len(tr)
tokens = list(tr.tokens)
summary = views.prediction_summary(tr)

# ----------------------------------------------------------------- summary
c1, c2, c3, c4 = st.columns(4)
if summary["predicted"]:
    c1.metric("Cross-entropy (nats/char)", f"{summary['cross_entropy']:.3f}",
              help="Mean −log P(next character) over the T−1 predicted characters.")
    c2.metric("Perplexity", f"{summary['perplexity']:.2f}", help="exp(cross-entropy)")
    c3.metric("Bits per character", f"{summary['bits_per_char']:.3f}", help="cross-entropy / ln 2")
else:
    c1.metric("Cross-entropy (nats/char)", "—", help="A single character predicts nothing: type at least two.")
c4.metric("Unknown characters", f"{summary['unknown']}",
          help="Characters the model never saw in training: it reads them as <unk>.")

unknown = views.unknown_chars(tr)
if unknown:
    shown = ", ".join(f"step {t}: {md(repr(display_char(ch)))}" for t, ch in unknown[:20])
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    st.warning(f"{len(unknown)} character(s) are not in the model's vocabulary and were read as "
               f"<unk> (underlined in red below): {shown}{more}.")
if tr.preprocessed:
    with st.expander(f"The model's preprocessing ({ctx.model.config.preprocessing}) changed your text — "
                     "this is what it read", expanded=False):
        st.text(tr.text[:TEXT_MAX] + ("…" if len(tr.text) > TEXT_MAX else ""))

# ----------------------------------------------------------------- text coloured by surprisal
st.subheader("The text coloured by surprisal")
sur = views.char_surprisal(tr)
finite = [s for s in sur if s is not None and math.isfinite(s)]
smax = max(finite) if finite else 1.0
lo, hi = (0, T) if T <= TEXT_MAX else (0, TEXT_MAX)
tips = []
pnext = views.next_char_probs(tr)
for t in range(lo, hi):
    ch = tr.chars[t]
    if t == 0:
        tips.append(f"step 0: {ch!r} (first character: nothing predicted it)")
    else:
        tips.append(f"step {t}: {ch!r} had P = {pnext[t - 1]:.4f}, surprisal {sur[t]:.3f} nats")
colored_text(
    tr.chars[lo:hi], sur[lo:hi], vmin=0.0, vmax=smax, scale=SURPRISAL, tooltips=tips,
    marked=[t for t in tr.unknown_positions if lo <= t < hi], font_size=ctx.font_size + 3,
    caption=f"Surprisal −log P(character | everything before), 0 (white: expected) … {smax:.2f} nats (dark red: surprising); "
            "hover a character for its probability" + (f"; first {TEXT_MAX:,} characters" if T > TEXT_MAX else ""), key="pr_text")

# ----------------------------------------------------------------- window controls
use("pr.k", "pr.win", "pr.log", k_max=min(10, len(tokens)), widths=list(WIDTHS))
with controls("pr", navigation=True):
    c1, c2, c3 = st.columns([1, 2, 1])
    k = c1.number_input("Top k", 1, min(10, len(tokens)), key="pr_k")
    width = c2.select_slider("Window (characters)", WIDTHS, key="pr_width")
    log = c3.toggle("log scale", key="pr_log", help="Colour the heatmap by log₁₀ P (shows the small ones).")
sync("pr.k", "pr.win", "pr.log")
width = min(width, T)
start, stop = window_start("pr", T, width)
chars = tr.chars[start:stop]
next_chars = [tr.chars[t + 1] if t + 1 < T else None for t in range(start, stop)]
next_ids = [int(tr.ids[t + 1]) if t + 1 < T else None for t in range(start, stop)]

# ----------------------------------------------------------------- Karpathy's top-k table
top_chars, top_probs, _ = views.topk(tr.probs[start:stop], tokens, int(k))
show_chart(pplots.topk_figure(chars, top_chars, top_probs, start=start, next_chars=next_chars,
                                     font_size=ctx.font_size), ctx, key="pr_topk")

# ----------------------------------------------------------------- probability heatmap
show_chart(pplots.probability_heatmap(tr.probs[start:stop], tokens, chars, start=start, log=log,
                                             next_ids=next_ids, font_size=ctx.font_size),
                  ctx, key="pr_heatmap")

# ----------------------------------------------------------------- one step
st.subheader("One step")
use("pr.step", T=T, start=start)
with controls("pr-step", navigation=True):
    if T > 1:
        step = st.slider("Step t (after reading the character at t)", 0, T - 1, key="pr_step")
    else:
        step = 0
sync("pr.step")
nid = int(tr.ids[step + 1]) if step + 1 < T else None
what = (f"P(next | …{display_char(tr.chars[step])!r}) at step {step}"
        + (f"; the next character was {display_char(tr.chars[step + 1])!r} "
           f"(P = {float(tr.probs[step, nid]):.4f})" if nid is not None else "; last step"))
show_chart(pplots.step_distribution(tr.probs[step], tokens, next_id=nid, title=what,
                                           font_size=ctx.font_size), ctx, key="pr_step_bar")

baseline_card(ctx)
