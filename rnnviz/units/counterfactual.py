"""Counterfactual edits: replace a piece of the text and measure how the states and the
next-character distributions differ afterwards; see :mod:`rnnviz.units`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import CharRNN
from ..trace import trace
from ..vocab import preprocess
from .refs import UnitsError


@dataclass
class Counterfactual:
    """Effect of one edit over the following steps (see the module docstring for the alignment).

    steps, orig_pos, edit_pos: (K,) long; delta: trace name (``layer0.h``, ``layer0.c``) → (K,)
    float64 ‖·‖₂ differences; kl: (K,) float64 KL(P_t ‖ P'_t) in nats.
    """

    original: str
    edited: str
    start: int
    end: int
    replacement: str
    steps: Tensor
    orig_pos: Tensor
    edit_pos: Tensor
    delta: dict[str, Tensor]
    kl: Tensor
    unknown_in_edit: int

    def memory(self, name: str, tol: float = 1e-2, relative: bool = True) -> int | None:
        """Steps j after which ``delta[name]`` (or "kl") stays below tol (× its j=0 value when
        ``relative``) to the end; None when it never settles within the text."""
        v = self.kl if name == "kl" else self.delta[name]
        if v.numel() == 0:
            return None
        bound = tol * float(v[0]) if relative else tol
        above = torch.nonzero(v > bound).squeeze(1)
        if above.numel() == 0:
            return 0
        last = int(above[-1])
        return last + 1 if last + 1 < v.numel() else None


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(P ‖ Q) per row from log-probabilities (…, |V|): Σ p (log p − log q), float64, nats."""
    lp, lq = log_p.double(), log_q.double()
    return (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)


def counterfactual(model: CharRNN, text: str, start: int, end: int, replacement: str) -> Counterfactual:
    """Replace ``text[start:end]`` (indices into the preprocessed text) by ``replacement``; compare.

    Raises UnitsError / TextError with a user-facing message for bad indices or texts.
    """
    original = preprocess(text, model.config.preprocessing)
    if not (0 <= start <= end <= len(original)):
        raise UnitsError(f"The edit must lie inside the text: 0 ≤ start ≤ end ≤ {len(original)}, "
                         f"got [{start}, {end}).")
    edited = original[:start] + replacement + original[end:]
    if not original or not edited:
        raise UnitsError("Both the text and the edited text need at least one character.")
    t_o = trace(model, original, preprocess_text=False)
    t_e = trace(model, edited, preprocess_text=False)
    shift = len(replacement) - (end - start)
    j0 = 0 if (end - 1 >= 0 and start + len(replacement) - 1 >= 0) else 1
    js = torch.arange(j0, len(original) - end + 1)
    orig_pos = end - 1 + js
    edit_pos = orig_pos + shift
    delta = {}
    for name in t_o.names():
        if name.endswith(".h") or name.endswith(".c"):
            delta[name] = (t_o[name][orig_pos].double() - t_e[name][edit_pos].double()).norm(dim=1)
    kl = kl_divergence(t_o.log_probs[orig_pos], t_e.log_probs[edit_pos])
    unknown = sum(1 for p in t_e.unknown_positions if start <= p < start + len(replacement))
    return Counterfactual(original, edited, start, end, replacement, js, orig_pos, edit_pos,
                          delta, kl, unknown)
