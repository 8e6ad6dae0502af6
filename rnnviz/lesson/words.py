"""(b) A tiny word-level RNN over "the time machine by", trained on the phrase, and O_3 (the
prediction of "by") attributed to the earlier words (:func:`word_step_through`); see
:mod:`rnnviz.lesson`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells import CELLS, spec
from ..model import CharRNN, ModelConfig, build_model
from ..serving.threads import one_thread
from ..trace import trace as run_trace
from ..vocab import UNK

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
    if cell not in CELLS or not spec(cell).is_vanilla:
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


def ablation_effects(attr: WordAttribution) -> list[str]:
    """What zeroing each earlier word *does* to O_3[by], one phrase per word, sign spelled out.

    ``attr.ablation[t]`` is O_3[by] − O_3[by](X_t = 0): the word's contribution. Replacing X_t by
    the zero vector therefore changes the score by the *negative* of it: a positive contribution
    means zeroing the word lowers O_3[by]. Returns e.g. ``"lowers it by 0.846 (machine)"``.
    """
    out = []
    for word, contribution in zip(attr.words, attr.ablation):
        change = -contribution                      # O_3[by](X_t = 0) − O_3[by]
        if abs(change) < 5e-4:
            out.append(f"leaves it unchanged ({word})")
        else:
            out.append(f"{'raises' if change > 0 else 'lowers'} it by {abs(change):.3f} ({word})")
    return out
