"""Generate: continue a prefix by sampling, the book's ``predict`` (d2l §9.5), with the probability
of every generated character shown."""

from __future__ import annotations

import math

import streamlit as st

from app_pages.ui.charts import show_chart
from app_pages.ui.context import context
from app_pages.ui.text import DEFAULT_TEXT, md
from app_pages.ui.url import keep_int, url_default, url_set, view_params
from rnnviz import generate as gen
from rnnviz.plots import text as tplots
from rnnviz.plots.common import SEQUENTIAL
from rnnviz.plots.generate import generation_figure

MAX_LENGTH = 2_000
PREFIX_MAX = 500


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def cached_generation(fingerprint: str, prefix: str, n: int, temperature: float, top_k: int,
                      seed: int, _model) -> gen.Generation:
    return gen.generate(_model, prefix, n, temperature=temperature, top_k=top_k or None, seed=seed)


ctx = context()
view_params("gen.")
st.title("Generate")

default_prefix = (ctx.text or DEFAULT_TEXT)[:60]
url_default("gen_prefix", "gen.prefix", default_prefix, lambda s: s[:PREFIX_MAX])
url_default("gen_temp", "gen.temp", 1.0, float, lambda v: math.isfinite(v) and 0.0 <= v <= 3.0)
url_default("gen_len", "gen.len", 200, int, lambda v: 1 <= v <= MAX_LENGTH)
url_default("gen_topk", "gen.topk", 0, int, lambda v: 0 <= v <= ctx.model.config.vocab_size)
url_default("gen_seed", "gen.seed", 0, int, lambda v: 0 <= v < 2**31)
keep_int("gen_len", 1, MAX_LENGTH, 200)
keep_int("gen_topk", 0, ctx.model.config.vocab_size, 0)
keep_int("gen_seed", 0, 2**31 - 1, 0)

with st.container(key="gen-knobs"):   # the knobs are the lesson here: visible in lecture mode too
    prefix = st.text_input("Prefix", key="gen_prefix", max_chars=PREFIX_MAX,
                           help="What the model reads first (warm-up); it then continues it.")
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.slider("Temperature", 0.0, 3.0, step=0.05, key="gen_temp",
                            help="0 = always the most likely character; 1 = the model's distribution; "
                                 "> 1 = flatter, more surprising.")
    length = c2.number_input("Length", 1, MAX_LENGTH, key="gen_len")
    top_k = c3.number_input("Top-k (0 = all)", 0, ctx.model.config.vocab_size, key="gen_topk")
    seed = c4.number_input("Seed", 0, 2**31 - 1, key="gen_seed")
for param, value in (("gen.prefix", prefix), ("gen.temp", temperature), ("gen.len", length),
                     ("gen.topk", top_k), ("gen.seed", seed)):
    url_set(param, value)

try:
    result = cached_generation(ctx.fingerprint, prefix, int(length), float(temperature), int(top_k),
                               int(seed), ctx.model)
except ValueError as err:
    st.info(f"Cannot generate: {err}")
    st.stop()

if result.unknown_prefix_positions:
    st.warning(f"{len(result.unknown_prefix_positions)} character(s) of the prefix are not in the "
               "model's vocabulary and were read as <unk>.")
if result.prefix != prefix:
    st.caption("The prefix went through the model's preprocessing first; it read: "
               + md(repr(result.prefix[:200])))

probs = list(result.probs)
chars = list(result.prefix) + list(result.generated)
values = [None] * len(result.prefix) + probs
tips = [f"prefix character {t}" for t in range(len(result.prefix))]
tips += [f"generated {i}: {c!r}, P = {p:.4f} (sampled with P = {sp:.4f})"
         for i, (c, p, sp) in enumerate(zip(result.generated, probs, result.sample_probs))]
st.html(tplots.colored_text_html(
    chars, values, vmin=0.0, vmax=1.0, scale=SEQUENTIAL, tooltips=tips, font_size=ctx.font_size + 3,
    caption="Prefix (uncoloured) and the continuation, each generated character coloured by the "
            "probability the model gave it (temperature 1): dark = unlikely, yellow = likely. "
            "Hover a character for its numbers."))
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
