"""Counterfactual edits: replace a piece of the text and measure how the states and the
next-character distributions differ afterwards; see :mod:`rnnviz.units`. A thin wrapper over
:func:`rnnviz.interventions.counterfactual_edit` with the Units view's checks and result."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..interventions import counterfactual_edit, effect_duration, kl_divergence  # noqa: F401 (re-exported)
from ..model import CharRNN
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
        """Steps after the edit until ``delta[name]`` (or "kl") stays at or below tol (× its j=0
        value when ``relative``) to the end: :func:`rnnviz.interventions.effect_duration`; None
        when it never settles within the text."""
        v = self.kl if name == "kl" else self.delta[name]
        if v.numel() == 0:
            return None
        k = effect_duration(v, tol * float(v[0]) if relative else tol)
        return None if k is None else int(self.steps[0]) + k


def counterfactual(model: CharRNN, text: str, start: int, end: int, replacement: str) -> Counterfactual:
    """Replace ``text[start:end]`` (indices into the preprocessed text) by ``replacement``; compare.

    Raises UnitsError / TextError with a user-facing message for bad indices or texts.
    """
    original = preprocess(text, model.config.preprocessing)
    if not (0 <= start <= end <= len(original)):
        raise UnitsError(f"The edit must lie inside the text: 0 ≤ start ≤ end ≤ {len(original)}, "
                         f"got [{start}, {end}).")
    if not original or not original[:start] + replacement + original[end:]:
        raise UnitsError("Both the text and the edited text need at least one character.")
    ed = counterfactual_edit(model, original, start, end, replacement, preprocess_text=False)
    delta = {name: ed.diff(name) for name in ed.base.names() if name.endswith((".h", ".c"))}
    unknown = sum(1 for p in ed.patched.unknown_positions if start <= p < start + len(replacement))
    return Counterfactual(original, ed.edited, start, end, replacement, ed.steps, ed.orig_pos,
                          ed.edit_pos, delta, ed.kl, unknown)
