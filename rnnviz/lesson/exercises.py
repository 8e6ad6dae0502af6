"""(c) The four problems of d2l §6.3.5: the output size, an RNN exact on bigram counts, the
Gradients-view presets (measured) and what a model forgets after a one-character edit;
see :mod:`rnnviz.lesson`."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..interventions import counterfactual_edit, effect_duration, kl_divergence
from ..model import CharRNN, ModelConfig, build_model
from ..trace import trace as run_trace
from ..vocab import UNK, Vocab, preprocess
from ..names import act_name


def output_size(model: CharRNN) -> dict:
    """Problem 1: an RNN language model needs one output per vocabulary entry, q = |V|.

    Returns |V|, the shapes of W_hq and b_q, the hidden size and the output layer's parameter
    count, read from the model itself.
    """
    p = model.textbook_params(model.config.num_layers - 1)
    V, H = model.config.vocab_size, model.config.hidden_size
    tokens = list(model.config.tokens)
    return {"vocab_size": V, "hidden_size": H, "W_hq": tuple(p["W_hq"].shape), "b_q": tuple(p["b_q"].shape),
            "output_parameters": H * V + V, "preprocessing": model.config.preprocessing,
            "tokens": tokens, "has_unk": tokens[0] == UNK}


@dataclass
class BigramResult:
    text: str
    tokens: list[str]             #: vocabulary (``<unk>`` first), the order of rows/columns below
    counts: Tensor                #: (|V|, |V|) counts[i, j] = #(text[t] = i, text[t+1] = j)
    counted: Tensor               #: (|V|, |V|) counted conditional P(j | i), rows with no data: NaN
    rnn: Tensor                   #: (|V|, |V|) softmax(O) of the RNN after reading character i
    max_abs_error: float          #: max |rnn − counted| over rows with data
    max_abs_error_along_text: float  #: same, measured on the trace of the whole text
    rnn_cross_entropy: float      #: the RNN's cross-entropy on the text (nats/char)
    bigram_cross_entropy: float   #: −mean log P_counted(text[t+1] | text[t])
    params: dict[str, Tensor]     #: textbook parameters of the constructed RNN
    log_floor: float              #: log-probability used for never-seen pairs (exp underflows to 0)
    model: CharRNN = field(repr=False, default=None)


#: Largest text the bigram demo counts (characters); the vocabulary is capped by the text anyway.
MAX_BIGRAM_CHARS = 20_000
#: Stand-in for log 0 in W_hq: exp(−1e4) is exactly 0 in float32/float64, and unlike −inf it keeps
#: the products 0 · W_hq finite.
LOG_ZERO = -1.0e4


def bigram_exact_rnn(text: str, dtype: torch.dtype = torch.float32) -> BigramResult:
    """Problem 2: an RNN that is *exact* on a finite set — it reproduces the text's bigram counts.

    Construction (rnn_relu, h = |V|): W_xh = I, W_hh = 0, b_h = 0 so H_t = ReLU(X_t) = X_t, the
    one-hot of the character just read (the *previous* character of the one to predict);
    W_hq[i, j] = log P(j | i) from the counts, b_q = 0. Then O_t = H_t W_hq is row i of W_hq and
    softmax(O_t) = P(· | i) exactly, because the exponentials of log-probabilities already sum to 1.
    Never-seen pairs get :data:`LOG_ZERO`; characters never followed by anything get a uniform row
    (and are excluded from the error). The model is built with build_model + set_textbook_params and
    run with rnnviz.trace, like every other model here. Raises ValueError for texts under 2 chars.
    """
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError("The bigram demo needs a text of at least 2 characters.")
    if len(text) > MAX_BIGRAM_CHARS:
        raise ValueError(f"The bigram demo counts at most {MAX_BIGRAM_CHARS:,} characters.")
    vocab = Vocab.from_text(text)
    V = len(vocab)
    ids = vocab.encode(text).ids
    counts = torch.zeros(V, V, dtype=torch.float64)
    pairs = Counter(zip(ids[:-1].tolist(), ids[1:].tolist()))
    for (i, j), n in pairs.items():
        counts[i, j] = n
    totals = counts.sum(1, keepdim=True)
    seen = totals[:, 0] > 0
    counted = torch.where(seen[:, None], counts / totals.clamp_min(1), torch.full_like(counts, math.nan))
    log_p = torch.where(counts > 0, torch.log(counts / totals.clamp_min(1)), torch.full_like(counts, LOG_ZERO))
    log_p[~seen] = 0.0                     # uniform for rows without data
    model = build_model(ModelConfig("rnn_relu", V, 1, tuple(vocab.tokens)), seed=0).to(dtype)
    params = {"W_xh": torch.eye(V, dtype=dtype), "W_hh": torch.zeros(V, V, dtype=dtype),
              "b_h": torch.zeros(V, dtype=dtype), "W_hq": log_p.to(dtype), "b_q": torch.zeros(V, dtype=dtype)}
    model.set_textbook_params(0, params)
    model.requires_grad_(False)
    # Every row at once: a batch of V one-step sequences, sequence i reads character i (H_0 = 0,
    # so H_1 = ReLU(X_1 I) = the one-hot of character i), through the model's own forward.
    with torch.no_grad():
        logits, _ = model(torch.arange(V)[None, :])          # (T=1, B=V, |V|)
    rnn = torch.softmax(logits[0].double(), dim=-1)
    err = float((rnn[seen] - counted[seen]).abs().max())
    tr = run_trace(model, text, preprocess_text=False, gates=False)
    along = float((tr.probs[:-1].double() - counted[ids[:-1]]).abs().max())
    bigram_ce = float(-torch.log(counted[ids[:-1], ids[1:]]).mean())
    return BigramResult(text, list(vocab.tokens), counts, counted, rnn, err, along, tr.cross_entropy,
                        bigram_ce, {k: v.detach().clone() for k, v in model.textbook_params(0).items()},
                        LOG_ZERO, model)


#: Presets the lesson offers as links into the Gradients view: query parameters of that page
#: (``gr.`` is the Gradients view's URL prefix; ``gr.scale`` multiplies W_hh, the what-if knob
#: ``rnnviz.gradients.WhatIf.whh_scale``).
GRADIENT_PRESETS = {
    "W_hh × 0.5": {"gr.scale": "0.5"},
    "W_hh × 1 (as trained)": {"gr.scale": "1.0"},
    "W_hh × 2": {"gr.scale": "2.0"},
}


def measure_gradient_presets(model: CharRNN, text: str, max_chars: int = 200) -> list[dict]:
    """Problem 3, measured (not reimplemented): for every :data:`GRADIENT_PRESETS` entry, the fitted
    per-step factor of ‖∂ℓ/∂H_t‖ (loss at the last step, top layer) from ``rnnviz.gradients``,
    with W_hh scaled as the preset says (on a copy; the model is not touched).

    Uses the last ``max_chars`` characters of the text as the model reads it. Returns one dict per
    preset: label, scale, factor (per step; < 1 vanishing, > 1 exploding), steps_to_100x (steps
    for a 100× change of the fitted curve), params (the link's query parameters). Raises
    ImportError when rnnviz.gradients is absent, ValueError (GradientError) for texts under 2 chars.
    """
    from .. import gradients as G  # noqa: PLC0415 — the Gradients view's backend

    seen = preprocess(text, model.config.preprocessing)[-max_chars:]
    out = []
    for label, params in GRADIENT_PRESETS.items():
        scale = float(params["gr.scale"])
        curve = G.norm_curve(model, seen, loss="last", whatif=G.WhatIf(whh_scale=scale))
        fit = curve.fits.get(curve.top)
        factor = float(fit.factor) if fit is not None else math.nan
        out.append({"label": label, "scale": scale, "factor": factor,
                    "steps_to_100x": float(fit.steps_to_shrink(0.01)) if fit is not None else math.nan,
                    "params": dict(params)})
    return out


@dataclass
class Forgetting:
    text: str                  #: the text as the model saw it (after its preprocessing)
    edited: str                #: the same text with one character changed
    position: int              #: index of the edited character
    original_char: str
    new_char: str
    distance: Tensor           #: (T,) ‖H_t − H'_t‖ over all layers' hidden states (0 before the edit)
    relative: Tensor           #: (T,) distance / ‖H_t‖
    per_layer: Tensor          #: (L, T) per-layer distance
    output_change: Tensor      #: (T,) KL(P_t ‖ P'_t) of the next-character distributions, nats
    threshold: float
    relative_threshold: bool
    below_at: int | None       #: first step t ≥ position from which the distance stays ≤ threshold
    steps_to_forget: int | None  #: below_at − position
    max_distance: float
    unknown_new: bool          #: the replacement character is outside the vocabulary (<unk>)


def counterfactual_forgetting(model: CharRNN, text: str, position: int, new_char: str,
                              threshold: float = 0.01, relative: bool = True) -> Forgetting:
    """Problem 4: what the simple model forgets, measured by a counterfactual edit.

    ``text`` goes through the model's own preprocessing first (e.g. d2l cleaning), then the
    character at ``position`` of that text is replaced by ``new_char`` and both texts are traced
    (rnnviz.interventions.counterfactual_edit). distance_t = ‖H_t − H'_t‖₂ over every layer's H_t
    (LSTM: h only); output_change_t = KL(P_t ‖ P'_t) (rnnviz.interventions.kl_divergence).
    steps_to_forget = rnnviz.interventions.effect_duration of the distance (relative to ‖H_t‖ when
    ``relative``) from the edited step on: the steps after the edit until it stays at or below
    ``threshold`` to the end of the text (0: already at the edit); below_at = position + that;
    both None if it never does.
    Raises ValueError with a readable message for a bad position / character.
    """
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    seen = preprocess(text, model.config.preprocessing)
    if len(seen) < 2:
        raise ValueError("The text needs at least 2 characters (after the model's preprocessing).")
    if not isinstance(new_char, str) or len(new_char) != 1:
        raise ValueError("Type exactly one replacement character.")
    if not 0 <= position < len(seen):
        raise ValueError(f"The position must be in 0..{len(seen) - 1}.")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError("The threshold must be a positive number.")
    ed = counterfactual_edit(model, seen, position, position + 1, new_char, preprocess_text=False, gates=False)
    a, b = ed.base, ed.patched
    L = model.config.num_layers
    per_layer = torch.stack([(a[act_name(l, "h")] - b[act_name(l, "h")]).double().norm(dim=1) for l in range(L)])
    dist = per_layer.pow(2).sum(0).sqrt()
    norm = torch.stack([a[act_name(l, "h")].double().norm(dim=1) for l in range(L)]).pow(2).sum(0).sqrt()
    rel = dist / norm.clamp_min(1e-12)
    k = effect_duration((rel if relative else dist)[position:], threshold)
    below_at = None if k is None else position + k
    return Forgetting(seen, ed.edited, position, seen[position], new_char, dist, rel, per_layer,
                      kl_divergence(a.log_probs, b.log_probs), float(threshold), bool(relative), below_at,
                      k, float(dist.max()), new_char not in model.vocab)
