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
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..threads import one_thread
from ..model import CharRNN, ModelConfig, build_model
from ..trace import trace as run_trace
from ..vocab import UNK, Vocab, preprocess


# =====================================================================================  (a) toy

TOY_SHAPES = {"X": (3, 1), "W_xh": (1, 2), "W_hh": (2, 2), "b_h": (1, 2), "W_hq": (2, 3), "b_q": (1, 3)}
ACTIVATIONS = ("relu", "tanh")

#: Example weights. "dead": W_xh < 0 while every X_t > 0, so every pre-activation of the hidden
#: layer is negative and ReLU outputs H = 0 at every step; then O_t = ReLU(b_q) = 0 as well.
#: "alive": the same X with mixed-sign weights, so some units fire.
TOY_PRESETS: dict[str, dict[str, list[list[float]]]] = {
    "dead": {
        "X": [[1.0], [2.0], [3.0]],
        "W_xh": [[-1.0, -0.5]],
        "W_hh": [[0.5, -0.3], [0.2, 0.4]],
        "b_h": [[0.0, 0.0]],
        "W_hq": [[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]],
        "b_q": [[0.0, 0.0, 0.0]],
    },
    "alive": {
        "X": [[1.0], [2.0], [3.0]],
        "W_xh": [[0.8, -0.5]],
        "W_hh": [[0.5, -0.3], [0.2, 0.4]],
        "b_h": [[0.0, 0.1]],
        "W_hq": [[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]],
        "b_q": [[0.0, 0.0, 0.0]],
    },
}


class ToyInputError(ValueError):
    """The toy network's values are unusable (wrong shape, not finite); the message says why."""


def toy_params(preset: str = "dead") -> dict[str, Tensor]:
    """A fresh copy of one of :data:`TOY_PRESETS` as float64 tensors of the documented shapes."""
    if preset not in TOY_PRESETS:
        raise ToyInputError(f"unknown preset {preset!r}; expected one of {sorted(TOY_PRESETS)}")
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in TOY_PRESETS[preset].items()}


def _check_toy(params: dict) -> dict[str, Tensor]:
    out = {}
    for name, shape in TOY_SHAPES.items():
        if name not in params:
            raise ToyInputError(f"{name} is missing")
        try:
            raw = params[name]
            value = (raw.detach().to(torch.float64).clone() if isinstance(raw, Tensor)
                     else torch.from_numpy(np.array(raw, dtype=np.float64)))
        except (TypeError, ValueError):
            raise ToyInputError(f"{name} must be a table of numbers") from None
        if value.shape == shape[1:] and shape[0] == 1:   # accept a bias given as a vector
            value = value.reshape(shape)
        if tuple(value.shape) != shape:
            raise ToyInputError(f"{name} must have shape {shape[0]}×{shape[1]}, got "
                                f"{'×'.join(map(str, value.shape)) or 'a scalar'}")
        if not torch.isfinite(value).all():
            raise ToyInputError(f"{name} has an empty, NaN or infinite entry: type a number in every cell")
        out[name] = value
    return out


def _phi(name: str):
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ToyInputError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


@dataclass
class ToyStep:
    """One time step of the toy network (all row vectors, as in the book)."""

    t: int                 #: 1-based, as in the book
    X_t: Tensor            #: (1, 1)
    XW: Tensor             #: X_t W_xh                (1, 2)
    HW: Tensor             #: H_{t-1} W_hh            (1, 2)
    A_t: Tensor            #: X_t W_xh + H_{t-1} W_hh + b_h   (1, 2): the hidden pre-activation
    H_t: Tensor            #: φ(A_t)                  (1, 2)
    Z_t: Tensor            #: H_t W_hq + b_q          (1, 3): the output pre-activation
    O_t: Tensor            #: φ(Z_t)                  (1, 3)


@dataclass
class ToyResult:
    activation: str
    params: dict[str, Tensor]
    steps: list[ToyStep]
    A: Tensor              #: (3, 2) hidden pre-activations, one row per step
    H: Tensor              #: (3, 2)
    Z: Tensor              #: (3, 3) output pre-activations
    O: Tensor              #: (3, 3)
    H_all_zero: bool
    O_all_zero: bool
    dead_units: list[int]  #: hidden units (0-based) that are 0 at every step (ReLU: A ≤ 0 always)
    grad_norms: dict[str, float]  #: ‖∂L/∂W‖ for L = Σ_t cross-entropy(O_t, target_t), target = t
    explanation: list[str] = field(default_factory=list)

    def shapes(self) -> dict[str, str]:
        """Every named quantity with its shape, e.g. ``{"W_xh": "1×2", ...}``."""
        named = {**self.params, "A": self.A, "H": self.H, "Z": self.Z, "O": self.O}
        return {k: "×".join(map(str, v.shape)) for k, v in named.items()}


def run_toy(params: dict | None = None, activation: str = "relu") -> ToyResult:
    """Run the toy network step by step: H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h), O_t = φ(H_t W_hq + b_q).

    params: tensors/nested lists named as :data:`TOY_SHAPES` (default: the "dead" preset).
    activation: "relu" or "tanh", applied to both layers as in the seed. H_0 = 0.
    Also measures the gradient of a cross-entropy loss (target class t at step t) with respect to
    every weight: with all-zero ReLU outputs it is exactly 0 (nothing can revive the units).
    Raises ToyInputError for bad shapes or non-finite values.
    """
    phi = _phi(activation)
    p = _check_toy(toy_params("dead") if params is None else params)
    leaf = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    X, W_xh, W_hh, b_h, W_hq, b_q = (leaf[k] for k in ("X", "W_xh", "W_hh", "b_h", "W_hq", "b_q"))
    H_prev = torch.zeros(1, 2, dtype=torch.float64)
    steps, As, Hs, Zs, Os = [], [], [], [], []
    for t in range(3):
        X_t = X[t:t + 1]                       # (1, 1)
        XW = X_t @ W_xh                        # (1, 1)(1, 2) → (1, 2)
        HW = H_prev @ W_hh                     # (1, 2)(2, 2) → (1, 2)
        A_t = XW + HW + b_h
        H_t = phi(A_t)
        Z_t = H_t @ W_hq + b_q                 # (1, 2)(2, 3) → (1, 3)
        O_t = phi(Z_t)
        steps.append(ToyStep(t + 1, *(v.detach() for v in (X_t, XW, HW, A_t, H_t, Z_t, O_t))))
        As.append(A_t), Hs.append(H_t), Zs.append(Z_t), Os.append(O_t)
        H_prev = H_t
    A, H, Z, O = (torch.cat(v) for v in (As, Hs, Zs, Os))
    loss = torch.nn.functional.cross_entropy(O, torch.arange(3), reduction="sum")
    grads = torch.autograd.grad(loss, [leaf[k] for k in TOY_SHAPES if k != "X"])
    grad_norms = {k: float(g.norm()) for k, g in zip([k for k in TOY_SHAPES if k != "X"], grads)}
    H, O, A, Z = H.detach(), O.detach(), A.detach(), Z.detach()
    dead = [j for j in range(2) if bool((H[:, j] == 0).all())]
    res = ToyResult(activation, p, steps, A, H, Z, O, bool((H == 0).all()), bool((O == 0).all()),
                    dead, grad_norms)
    res.explanation = _explain_toy(res)
    return res


def _explain_toy(r: ToyResult) -> list[str]:
    lines = []
    if r.activation == "relu":
        if r.H_all_zero:
            lines.append("Every hidden pre-activation A_t = X_t W_xh + H_{t-1} W_hh + b_h is ≤ 0, and "
                         "ReLU(a) = max(0, a) maps all of them to 0: H is all zeros.")
            lines.append("With H_{t-1} = 0 the recurrent term H_{t-1} W_hh contributes nothing, so the "
                         "state cannot carry anything forward either.")
        elif r.dead_units:
            lines.append(f"Hidden unit(s) {', '.join(str(j + 1) for j in r.dead_units)} have a "
                         "pre-activation ≤ 0 at every step, so ReLU outputs 0 there: a dead unit.")
        if r.O_all_zero:
            lines.append("The output layer sees H_t W_hq + b_q; every entry is ≤ 0 "
                         + ("(with H = 0 it is just b_q) " if r.H_all_zero else "")
                         + "so ReLU outputs O = 0: softmax(O_t) is uniform, the network says nothing.")
        if r.H_all_zero or r.O_all_zero or r.dead_units:
            total = sum(r.grad_norms.values())
            lines.append("ReLU's slope is 0 for negative inputs, so the gradient through a dead unit "
                         f"is 0 as well (measured: Σ‖∂L/∂W‖ = {total:.3g}"
                         + (" for the weights feeding the dead layer" if total else "")
                         + "): gradient descent cannot bring it back. Fixes: positive biases, "
                         "a different initialisation, leaky ReLU, or tanh.")
        if not lines:
            lines.append("Some pre-activations are positive, so ReLU passes them on: H is not all zero.")
    else:
        lines.append("tanh(a) is 0 only at a = 0 and keeps the sign of negative pre-activations, so "
                     "the same weights give non-zero H_t and O_t, and a non-zero gradient.")
        if r.H_all_zero:
            lines.append("Here every pre-activation is exactly 0, so even tanh outputs 0.")
    return lines


# =====================================================================================  (b) words

WORDS = ("the", "time", "machine", "by")
#: The one-symbol stand-ins for the words inside the CharRNN vocabulary (its tokens are characters).
_WORD_SYMBOLS = ("T", "I", "M", "B")


@dataclass
class WordAttribution:
    """How O_3 (the scores after reading "the time machine") depends on each earlier word.

    The attributed quantity is the logit O_3[by] (log P saturates near 0 once the phrase is learnt,
    the logit does not); ablation is also reported on log P(by).
    """

    words: list[str]               #: the input words w_1 … w_3 ("the", "time", "machine")
    target: str                    #: the word O_3 should predict ("by")
    vocab: list[str]               #: output vocabulary, index order of O_t (with <unk> first)
    H: Tensor                      #: (3, h): H_1 … H_3
    O_3: Tensor                    #: (|V|,) logits at step 3
    P_3: Tensor                    #: (|V|,) softmax(O_3)
    log_p_target: float            #: log P(by | the time machine)
    grad_norm: list[float]         #: ‖∂O_3[by] / ∂X_t‖ for t = 1, 2, 3
    grad_x_input: list[float]      #: (∂O_3[by] / ∂X_t) · X_t
    ablation: list[float]          #: O_3[by] − O_3[by] with X_t replaced by 0
    ablation_log_p: list[float]    #: log P(by) − log P(by) with X_t replaced by 0
    hidden_size: int
    train_steps: int
    final_loss: float              #: mean cross-entropy on the phrase after training
    params: dict[str, Tensor]      #: the textbook parameters (W_xh, W_hh, b_h, W_hq, b_q)


def word_model(hidden_size: int = 4, seed: int = 0, train_steps: int = 100, lr: float = 0.05,
               cell: str = "rnn_tanh") -> tuple[CharRNN, float]:
    """A word-level RNN over {the, time, machine, by}, trained on the phrase "the time machine by".

    It is a CharRNN whose vocabulary is ``<unk>`` plus one symbol per word; the next-word targets
    are time→machine after "the time", etc. (the → time → machine → by). Deterministic for a seed.
    Returns the model (eval mode) and the final mean cross-entropy in nats.
    """
    if cell not in ("rnn_tanh", "rnn_relu"):
        raise ValueError("the word demo uses the plain RNN (rnn_tanh or rnn_relu)")
    if not 1 <= hidden_size <= 64 or not 0 <= train_steps <= 2000:
        raise ValueError("hidden_size must be in 1..64 and train_steps in 0..2000")
    cfg = ModelConfig(cell, int(hidden_size), 1, (UNK, *_WORD_SYMBOLS))
    model = build_model(cfg, seed=seed)
    ids = torch.arange(1, 5)                      # the, time, machine, by
    inputs, targets = ids[:-1, None], ids[1:]
    # Plain Adam written out (torch.optim's first import costs seconds; this is 8 lines).
    params = list(model.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    with one_thread():
        for step in range(1, train_steps + 1):
            logits, _ = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits[:, 0], targets)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, a, b in zip(params, grads, m1, m2):
                    a.mul_(beta1).add_(g, alpha=1 - beta1)
                    b.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    step_size = lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                    p.addcdiv_(a, b.sqrt().add_(eps), value=-step_size)
    with torch.no_grad():
        logits, _ = model(inputs)
        final = float(torch.nn.functional.cross_entropy(logits[:, 0], targets))
    model.eval().requires_grad_(False)
    return model, final


def word_step_through(hidden_size: int = 4, seed: int = 0, train_steps: int = 100) -> WordAttribution:
    """Forward "the time machine" through :func:`word_model` and attribute O_3[by] to each word.

    Three measurements per earlier word w_t (t = 1, 2, 3):
      * gradient norm ‖∂O_3[by] / ∂X_t‖ (how sensitive the score of "by" is to X_t),
      * gradient × input (∂O_3[by] / ∂X_t) · X_t (first-order contribution of the one-hot X_t),
      * ablation: the change of O_3[by] (and of log P(by)) when X_t is replaced by the zero vector,
        measured exactly by a second forward pass.
    The forward values (H_t, O_3, softmax) come from :func:`rnnviz.trace`, as for every char model.
    """
    model, final = word_model(hidden_size, seed, train_steps)
    symbols = "".join(_WORD_SYMBOLS[:3])
    tr = run_trace(model, symbols, preprocess_text=False)
    target = model.vocab.id_of(_WORD_SYMBOLS[3])

    def scores(x: Tensor) -> tuple[Tensor, Tensor]:
        outs, _ = model.run_layers(x[:, None, :])
        o3 = model.output(outs[-1][-1, 0])
        return o3[target], torch.log_softmax(o3, dim=-1)[target]

    x = model.one_hot(tr.ids)
    with one_thread(), torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        logit, _ = scores(xg)
        (g,) = torch.autograd.grad(logit, xg)
    with torch.no_grad():
        base_logit, base_lp = scores(x)
        ablation, ablation_lp = [], []
        for t in range(3):
            x0 = x.clone()
            x0[t] = 0.0
            a_logit, a_lp = scores(x0)
            ablation.append(float(base_logit - a_logit))
            ablation_lp.append(float(base_lp - a_lp))
    vocab = ["<unk>", *WORDS]
    return WordAttribution(
        words=list(WORDS[:3]), target=WORDS[3], vocab=vocab, H=tr["layer0.h"].clone(),
        O_3=tr.logits[-1].clone(), P_3=tr.probs[-1].clone(), log_p_target=float(tr.log_probs[-1, target]),
        grad_norm=[float(g[t].norm()) for t in range(3)],
        grad_x_input=[float((g[t] * x[t]).sum()) for t in range(3)],
        ablation=ablation, ablation_log_p=ablation_lp, hidden_size=hidden_size,
        train_steps=train_steps, final_loss=final, params=dict(model.textbook_params(0)))


# =====================================================================================  (c) §6.3.5

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
    output_change: Tensor      #: (T,) total-variation distance ½‖softmax(O_t) − softmax(O'_t)‖₁
    threshold: float
    relative_threshold: bool
    below_at: int | None       #: first step t > position from which the distance stays below threshold
    steps_to_forget: int | None  #: below_at − position
    max_distance: float
    unknown_new: bool          #: the replacement character is outside the vocabulary (<unk>)


def counterfactual_forgetting(model: CharRNN, text: str, position: int, new_char: str,
                              threshold: float = 0.01, relative: bool = True) -> Forgetting:
    """Problem 4: what the simple model forgets, measured by a counterfactual edit.

    ``text`` goes through the model's own preprocessing first (e.g. d2l cleaning), then the
    character at ``position`` of that text is replaced by ``new_char`` and both texts are traced
    (rnnviz.trace, read-only). distance_t = ‖H_t − H'_t‖₂ over every layer's H_t (LSTM: h only).
    below_at is the first step after the edit from which the distance (relative to ‖H_t‖ when
    ``relative``) stays below ``threshold`` to the end of the text; None if it never does.
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
    edited = seen[:position] + new_char + seen[position + 1:]
    a = run_trace(model, seen, preprocess_text=False, gates=False)
    b = run_trace(model, edited, preprocess_text=False, gates=False)
    L = model.config.num_layers
    per_layer = torch.stack([(a[f"layer{l}.h"] - b[f"layer{l}.h"]).double().norm(dim=1) for l in range(L)])
    dist = per_layer.pow(2).sum(0).sqrt()
    norm = torch.stack([a[f"layer{l}.h"].double().norm(dim=1) for l in range(L)]).pow(2).sum(0).sqrt()
    rel = dist / norm.clamp_min(1e-12)
    tv = 0.5 * (a.probs.double() - b.probs.double()).abs().sum(1)
    measure = rel if relative else dist
    above = (measure[position + 1:] >= threshold).nonzero()
    T = len(seen)
    if position + 1 >= T:
        below_at = None
    elif above.numel() == 0:
        below_at = position + 1
    else:
        last = position + 1 + int(above[-1])
        below_at = last + 1 if last + 1 < T else None
    return Forgetting(seen, edited, position, seen[position], new_char, dist, rel, per_layer, tv,
                      float(threshold), bool(relative), below_at,
                      None if below_at is None else below_at - position, float(dist.max()),
                      new_char not in model.vocab)
