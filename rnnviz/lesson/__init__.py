"""Pure backend of the "Lesson §6.3" view: small, measured demonstrations of the RNN section.

No Streamlit here. Every function takes plain values (tensors, strings, numbers) and returns plain
data (dataclasses of tensors / floats / strings), so the page only wires widgets and the tests can
check every number. Notation is d2l's (row vectors, weights on the right)::

    H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)        O_t = H_t W_hq + b_q        P = softmax(O_t)

Contents
--------
(a) :func:`run_toy` — the seed's toy network: X (3×1, three time steps of one real feature),
    W_xh (1×2), W_hh (2×2), W_hq (2×3), the activation on *both* layers. It is not a character
    model (its input is real-valued), so it is written here in plain torch ops with d2l's names.
    It shows, step by step and with shapes, how ReLU can output all zeros (every pre-activation
    ≤ 0: the units are "dead", and their gradient is exactly 0 too) and how tanh differs.
(b) :func:`word_step_through` — a tiny *word*-level RNN over "the time machine by". It is a
    :class:`~rnnviz.model.CharRNN` (same code as every char model) whose "characters" are one
    symbol per word; it is trained for a few hundred deterministic Adam steps on the phrase, then
    O_3 (the prediction of "by") is attributed to "the", "time", "machine" by gradients and ablation.
(c) The four problems of d2l §6.3.5 (the section's exercises):
    1. :func:`output_size` — how many outputs an RNN language model needs (|V|).
    2. :func:`bigram_exact_rnn` — an RNN whose hidden state is the one-hot of the previous
       character and whose W_hq holds log-probabilities: softmax(O_t) *is* the counted bigram
       distribution (max abs difference measured).
    3. Long-chain gradients — the Gradients view (``rnnviz.gradients``); :data:`GRADIENT_PRESETS`
       are the query-parameter presets the lesson links to (nothing is recomputed here).
    4. :func:`counterfactual_forgetting` — what a model forgets: edit one early character and
       measure ‖H_t − H'_t‖ at every later step, and when it falls below a threshold.

Modules (every name is re-exported here): :mod:`.toy` (a), :mod:`.words` (b), :mod:`.exercises` (c).
"""

from __future__ import annotations

from .exercises import (GRADIENT_PRESETS, LOG_ZERO, MAX_BIGRAM_CHARS, BigramResult, Forgetting,
                        bigram_exact_rnn, counterfactual_forgetting, measure_gradient_presets, output_size)
from .toy import (ACTIVATIONS, TOY_PRESETS, TOY_SHAPES, ToyInputError, ToyResult, ToyStep, run_toy,
                  toy_params)
from .words import WORDS, WordAttribution, ablation_effects, word_model, word_step_through

__all__ = [
    "ACTIVATIONS", "BigramResult", "Forgetting", "GRADIENT_PRESETS", "LOG_ZERO", "MAX_BIGRAM_CHARS",
    "TOY_PRESETS", "TOY_SHAPES", "ToyInputError", "ToyResult", "ToyStep", "WORDS", "WordAttribution",
    "ablation_effects", "bigram_exact_rnn", "counterfactual_forgetting", "measure_gradient_presets", "output_size",
    "run_toy", "toy_params", "word_model", "word_step_through",
]
