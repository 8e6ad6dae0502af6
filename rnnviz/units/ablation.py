"""Ablation: one unit forced to a value after every step of its layer (:func:`forward_with_unit`)
and the predictions compared with the unforced run (:func:`ablate`); see :mod:`rnnviz.units`.
Thin wrappers over :mod:`rnnviz.interventions` (trace hooks) with the Units view's checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import interventions
from ..interventions import keep, set_unit
from ..model import CharRNN
from ..trace import MAX_TRACE_CHARS, TextError, trace_ids
from ..vocab import preprocess
from .refs import UnitRef, UnitsError, unit_kinds
from ..names import act_name


@torch.inference_mode()
def forward_with_unit(model: CharRNN, ids: Tensor, layer: int, unit: int | None, kind: str = "h",
                      value: float = 0.0) -> tuple[Tensor, list[Tensor]]:
    """Log-probabilities (T, |V|) and per-layer H [(T, h)] with one unit forced (see module doc).

    ``ids`` (T,) long. A hook on ``layer{layer}.{kind}`` (rnnviz.interventions.set_unit) runs that
    layer step by step; the others run fused. ``unit=None`` runs the same path without forcing."""
    hook = keep if unit is None else set_unit(unit, value)
    cache, _ = trace_ids(model, ids, gates=False, hooks={act_name(layer, kind): hook})
    return cache["log_probs"], [cache[act_name(l, "h")] for l in range(model.config.num_layers)]


@dataclass
class Ablation:
    """Predictions with and without one unit forced.

    log_probs_base, log_probs_ablated: (T, |V|); surprisal_*: (T−1,) nats of the actual next
    character; kl: (T,) KL(P_base ‖ P_ablated); argmax_changed: (T,) bool; unit_base: (T,) the
    unit's own unforced trajectory.
    """

    unit: UnitRef
    mode: str
    value: float
    chars: list[str]
    tokens: tuple[str, ...]
    log_probs_base: Tensor
    log_probs_ablated: Tensor
    surprisal_base: Tensor
    surprisal_ablated: Tensor
    kl: Tensor
    argmax_changed: Tensor
    unit_base: Tensor

    @property
    def delta_surprisal(self) -> Tensor:
        return self.surprisal_ablated - self.surprisal_base

    @property
    def mean_delta(self) -> float:
        d = self.delta_surprisal
        return float(d.double().mean()) if d.numel() else 0.0

    def top(self, t: int, k: int = 5, ablated: bool = False) -> list[tuple[str, float]]:
        """The k most likely next characters at step t, with probabilities."""
        lp = (self.log_probs_ablated if ablated else self.log_probs_base)[t]
        vals, idx = lp.exp().topk(min(k, lp.numel()))
        return [(self.tokens[int(i)], float(v)) for v, i in zip(vals, idx)]


def ablate(model: CharRNN, text: str, layer: int, unit: int, *, kind: str = "h", mode: str = "zero",
           value: float = 0.0) -> Ablation:
    """Force unit ``kind``[unit] of ``layer`` to 0 (mode "zero") or ``value`` (mode "clamp") over
    ``text`` (the model's preprocessing applied) and compare predictions. Never changes ``model``."""
    cfg = model.config
    if not 0 <= layer < cfg.num_layers:
        raise UnitsError(f"layer must be in 0..{cfg.num_layers - 1}, got {layer}")
    if not 0 <= unit < cfg.hidden_size:
        raise UnitsError(f"unit must be in 0..{cfg.hidden_size - 1}, got {unit}")
    if kind not in unit_kinds(model):
        raise UnitsError(f"kind must be one of {unit_kinds(model)} for a {cfg.cell} model")
    if mode not in ("zero", "clamp"):
        raise UnitsError("mode must be 'zero' or 'clamp'")
    value = 0.0 if mode == "zero" else float(value)
    if not math.isfinite(value):
        raise UnitsError("The clamp value must be a finite number.")
    prepared = preprocess(text, cfg.preprocessing)
    if not prepared:
        raise TextError("The text is empty: type at least one character.")
    if len(prepared) > MAX_TRACE_CHARS:
        raise TextError(f"The text has {len(prepared):,} characters; at most {MAX_TRACE_CHARS:,}.")
    eff = interventions.ablate(model, prepared, layer, unit, kind, value, preprocess_text=False, gates=False)
    lp0, lp1 = eff.base.log_probs, eff.patched.log_probs
    return Ablation(UnitRef(layer, kind, unit), mode, value, list(prepared), cfg.tokens, lp0, lp1,
                    eff.base.surprisal, eff.patched.surprisal, eff.kl, lp0.argmax(1) != lp1.argmax(1),
                    eff.base[eff.name][:, unit].clone())
