"""Generate: continue a prefix by sampling, the book's ``predict`` (d2l §9.5), with the probability
of every generated character shown."""

from __future__ import annotations

import math

import streamlit as st

from app_pages.ui.charts import show_chart
from app_pages.ui.colored_text import colored_text
from app_pages.ui.context import context
from app_pages.ui.text import DEFAULT_TEXT, md
from app_pages.ui.timeline import play_next, training_step
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.work import LIMITS, limit_message, reduced, run_heavy
from app_pages.ui.settings import settings
from rnnviz.serving import cost
from rnnviz import generate as gen
from rnnviz.plots.common import PROBABILITY
from rnnviz.plots.generate import generation_figure
from rnnviz.ref import ModelRef

MAX_LENGTH = 2_000
PREFIX_MAX = 500


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def cached_generation(ref: ModelRef, prefix: str, n: int, temperature: float, top_k: int,
                      seed: int, _model) -> gen.Generation:
    return run_heavy("generate", gen.generate, _model, prefix, n, temperature=temperature, top_k=top_k or None,
                     seed=seed)


ctx = context()
view_params("gen.")
st.title("Generate")
ctx = training_step(ctx, "gen")         # a checkpoint with a training timeline: the model at a step

default_prefix = (ctx.text or DEFAULT_TEXT)[:60]
use("gen.prefix", "gen.temp", "gen.len", "gen.topk", "gen.seed", prefix=default_prefix,
    V=ctx.model.config.vocab_size)

with st.container(key="gen-knobs"):   # the knobs are the lesson here: visible in lecture mode too
    # A text area, not a one-line input: a prefix may hold newlines (a poem, code), which
    # st.text_input drops (#28).
    prefix = st.text_area("Prefix", key="gen_prefix", max_chars=PREFIX_MAX, height=68,
                          help="What the model reads first (warm-up); it then continues it. "
                               "Ctrl+Enter applies it.")
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.slider("Temperature", 0.0, 3.0, step=0.05, key="gen_temp",
                            help="0 = always the most likely character; 1 = the model's distribution; "
                                 "> 1 = flatter, more surprising.")
    length = c2.number_input("Length", 1, MAX_LENGTH, key="gen_len")
    top_k = c3.number_input("Top-k (0 = all)", 0, ctx.model.config.vocab_size, key="gen_topk")
    seed = c4.number_input("Seed", 0, 2**31 - 1, key="gen_seed")
sync("gen.prefix", "gen.temp", "gen.len", "gen.topk", "gen.seed")

try:
    plan = cost.fit_generation(ctx.model.config, len(prefix), int(length),
                               request_seconds=settings().request_seconds)
    result = cached_generation(ctx.ref, prefix, plan.steps, float(temperature),
                               int(top_k), int(seed), ctx.model)
except LIMITS as err:
    st.warning(limit_message("generation", err))
    st.stop()
except ValueError as err:
    st.info(f"Cannot generate: {err}")
    st.stop()
reduced(plan)

if result.unknown_prefix_positions:
    st.warning(f"{len(result.unknown_prefix_positions)} character(s) of the prefix are not in the "
               "model's vocabulary and were read as <unk>.")
if result.overflow_step is not None:
    st.warning(f"The model's output overflowed (inf/NaN) at step t = {result.overflow_step}; "
               f"generation stopped there after {len(result.generated)} character(s).")
if result.prefix != prefix:
    st.caption("The prefix went through the model's preprocessing first; it read: "
               + md(repr(result.prefix[:200])))

probs = list(result.probs)
chars = list(result.prefix) + list(result.generated)
values = [None] * len(result.prefix) + probs
tips = [f"prefix character {t}" for t in range(len(result.prefix))]
tips += [f"generated {i}: {c!r}, P = {p:.4f} (sampled with P = {sp:.4f})"
         for i, (c, p, sp) in enumerate(zip(result.generated, probs, result.sample_probs))]
colored_text(
    chars, values, vmin=0.0, vmax=1.0, scale=PROBABILITY, tooltips=tips, font_size=ctx.font_size + 3,
    caption="Prefix (uncoloured) and the continuation, each generated character coloured by the "
            "probability the model gave it (temperature 1): dark = unlikely, yellow = likely. "
            "Hover a character for its numbers.", key="gen_text")
if probs:
    nll = -sum(math.log(max(p, 1e-300)) for p in probs) / len(probs)
    c1, c2, c3 = st.columns(3)
    c1.metric("Generated characters", f"{len(probs)}")
    c2.metric("Mean P", f"{sum(probs) / len(probs):.3f}")
    c3.metric("Surprisal of the sample", f"{nll:.3f} nats/char",
              help="Mean −log P of the generated characters under the plain softmax.")
    show_chart(generation_figure(result.generated, probs, result.sample_probs,
                                        font_size=ctx.font_size), ctx, key="gen_probs")
st.caption(f"Seed {result.seed}: the same prefix, temperature, top-k and seed give the same text.")
play_next("gen")
