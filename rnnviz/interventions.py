"""Interventions on a model's run, all through :func:`rnnviz.trace` hooks, with one way to measure them.

* :func:`clamp` — force unit ``layer{l}.{kind}[j]`` to a value at the steps [start, end), via a
  hook on that name; :func:`ablate` — the same at every step (0 by default).
* :func:`counterfactual_edit` — replace ``text[start:end]`` and compare the two runs, aligned on the
  shared suffix (for insertions and deletions too).

Both sides of a comparison go through the same code: the unforced run of :func:`clamp` carries a
hook that changes nothing on the same name, so every difference is due to the intervention (a
unit that feeds nothing gives differences of exactly 0).

**How much the predictions change** — one metric, :func:`kl_divergence`: KL(P_t ‖ P'_t) in nats, P
the unchanged next-character distribution. It is the expected extra surprisal per character of
predicting with the changed run when the unchanged one is right, so it is in the same unit (nats)
as the surprisal and cross-entropy shown everywhere in rnnviz, and the mean Δ surprisal of an
ablation is its sample estimate. It is computed from log-softmax outputs, so it stays finite (no
0·log 0 issue), and by Pinsker's inequality TV ≤ √(KL/2): a small KL also bounds the total
variation. (Total variation would be symmetric and bounded by 1, but has no such link to the
model's loss.)

**How long the effect lasts** — one rule, :func:`effect_duration`: the number of steps after the
intervention until a per-step difference falls to ``tol`` or below *and stays there* to the end of
the text; None when it never settles within the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import CharRNN
from .trace import Hook, Trace, trace
from .names import act_name

__all__ = ["Edit", "Effect", "ablate", "clamp", "counterfactual_edit", "effect_duration",
           "kl_divergence", "keep", "set_unit"]


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(P ‖ Q) per row from log-probabilities (…, |V|): Σ p (log p − log q), float64, nats."""
    lp, lq = log_p.double(), log_q.double()
    return (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)


def effect_duration(diff: Tensor, tol: float) -> int | None:
    """How long an effect lasts: for a per-step difference ``diff`` (K,) whose entry 0 is the last
    step the intervention acted on (the step that read the edit's last character, the last forced
    step), the smallest k with diff[j] ≤ tol for every j ≥ k. 0: within tol already at that step;
    None: it never settles within the text (the last entry is above tol or NaN, or K = 0)."""
    if diff.numel() == 0:
        return None
    above = torch.nonzero(~(diff <= tol)).squeeze(1)       # NaN counts as above
    if above.numel() == 0:
        return 0
    last = int(above[-1])
    return last + 1 if last + 1 < diff.numel() else None


def keep(value: Tensor, t: int) -> None:
    """A hook that changes nothing (puts a run on the same stepped path as a forced one)."""
    return None


def set_unit(unit: int, value: float, start: int = 0, end: int | None = None) -> Hook:
    """A hook that sets activation[unit] := value at the steps start ≤ t < end (end None: to the end)."""
    def hook(v: Tensor, t: int) -> Tensor | None:
        if t < start or (end is not None and t >= end):
            return None
        v[unit] = value
        return v
    return hook


@dataclass
class Effect:
    """A run with one unit forced next to the same run unforced.

    base, patched: the two traces (same text, same names); name: the forced trace name;
    unit, value; start, end: the forced steps [start, end).
    """

    base: Trace
    patched: Trace
    name: str
    unit: int
    value: float
    start: int
    end: int

    @property
    def kl(self) -> Tensor:
        """(T,) KL(P_t ‖ P'_t) of the next-character distributions, nats."""
        return kl_divergence(self.base.log_probs, self.patched.log_probs)

    def diff(self, name: str) -> Tensor:
        """(T,) float64 ‖base[name]_t − patched[name]_t‖₂ per step."""
        return (self.base[name].double() - self.patched[name].double()).norm(dim=1)

    def duration(self, tol: float, name: str = "kl") -> int | None:
        """:func:`effect_duration` of ``name``'s difference (or the KL) from the last forced step on."""
        series = self.kl if name == "kl" else self.diff(name)
        return effect_duration(series[self.end - 1:], tol)


def _check_unit(model: CharRNN, layer: int, unit: int, kind: str) -> str:
    cfg = model.config
    if not 0 <= layer < cfg.num_layers:
        raise ValueError(f"layer must be in 0..{cfg.num_layers - 1}, got {layer}")
    if not 0 <= unit < cfg.hidden_size:
        raise ValueError(f"unit must be in 0..{cfg.hidden_size - 1}, got {unit}")
    return act_name(layer, kind)


def clamp(model: CharRNN, text: str, layer: int, unit: int, value: float, start: int = 0,
          end: int | None = None, *, kind: str = "h", preprocess_text: bool = True,
          gates: bool = True) -> Effect:
    """Force ``layer{layer}.{kind}[unit]`` := value at the steps [start, end) (end None: to the end
    of the text) and run the unforced text through the same path. ``kind``: "h", or any other
    term of the cell (``c``, ``gates.f``, …; see rnnviz.trace.hook_names). ``gates``: record the
    gates, candidates and C_t too (as in rnnviz.trace; H_t alone is faster). Never changes ``model``.
    Raises ValueError for a bad layer / unit / value / range, HookError for a kind the cell lacks."""
    name = _check_unit(model, layer, unit, kind)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("The clamp value must be a finite number.")
    gates = gates or kind != "h"          # the forced term is always in the traces
    base = trace(model, text, hooks={name: keep}, preprocess_text=preprocess_text, gates=gates)
    end = len(base) if end is None else end
    if not 0 <= start < end <= len(base):
        raise ValueError(f"The clamped steps must satisfy 0 ≤ start < end ≤ {len(base)}, got [{start}, {end}).")
    patched = trace(model, base.text, hooks={name: set_unit(unit, value, start, end)}, preprocess_text=False,
                    gates=gates)
    return Effect(base, patched, name, unit, value, start, end)


def ablate(model: CharRNN, text: str, layer: int, unit: int, kind: str = "h", value: float = 0.0, *,
           preprocess_text: bool = True, gates: bool = True) -> Effect:
    """Force ``layer{layer}.{kind}[unit]`` := value (0: the unit ablated) at every step; see :func:`clamp`."""
    return clamp(model, text, layer, unit, value, kind=kind, preprocess_text=preprocess_text, gates=gates)


@dataclass
class Edit:
    """Two runs, ``text`` and ``text[:start] + replacement + text[end:]``, aligned after the edit.

    Step j pairs original position orig_pos[j] = end − 1 + j with edited position edit_pos[j] =
    start + len(replacement) − 1 + j: j = 0 is the step that read the edit's last character, j ≥ 1
    after both read the same j characters of the shared suffix. j = 0 is dropped when one side
    has nothing there (an insertion or deletion at the very start). steps, orig_pos, edit_pos: (K,).
    """

    original: str
    edited: str
    start: int
    end: int
    replacement: str
    base: Trace
    patched: Trace
    steps: Tensor
    orig_pos: Tensor
    edit_pos: Tensor

    @property
    def kl(self) -> Tensor:
        """(K,) float64 KL(P_t ‖ P'_t) at the aligned steps, nats."""
        return kl_divergence(self.base.log_probs[self.orig_pos], self.patched.log_probs[self.edit_pos])

    def diff(self, name: str) -> Tensor:
        """(K,) float64 ‖H_t − H'_t‖₂ (or any other (T, h) trace name) at the aligned steps."""
        return (self.base[name][self.orig_pos].double() - self.patched[name][self.edit_pos].double()).norm(dim=1)

    def duration(self, tol: float, name: str = "kl") -> int | None:
        """Steps after the edit (counted in j) until ``name``'s difference (or the KL) stays ≤ tol."""
        k = effect_duration(self.kl if name == "kl" else self.diff(name), tol)
        return None if k is None else int(self.steps[0]) + k


def counterfactual_edit(model: CharRNN, text: str, start: int, end: int, replacement: str, *,
                        preprocess_text: bool = True, gates: bool = True) -> Edit:
    """Replace ``text[start:end]`` (indices into the text after the model's preprocessing, unless
    ``preprocess_text`` is False) by ``replacement`` and trace both texts from the zero state.
    Raises ValueError when the range is outside the text or either text is empty."""
    original = trace(model, text, gates=gates, preprocess_text=preprocess_text)
    seen = original.text
    if not (0 <= start <= end <= len(seen)):
        raise ValueError(f"The edit must lie inside the text: 0 ≤ start ≤ end ≤ {len(seen)}, got [{start}, {end}).")
    edited_text = seen[:start] + replacement + seen[end:]
    if not edited_text:
        raise ValueError("The edited text needs at least one character.")
    edited = trace(model, edited_text, gates=gates, preprocess_text=False)
    j0 = 0 if (end - 1 >= 0 and start + len(replacement) - 1 >= 0) else 1
    steps = torch.arange(j0, len(seen) - end + 1)
    orig_pos = end - 1 + steps
    edit_pos = orig_pos + len(replacement) - (end - start)
    return Edit(seen, edited_text, start, end, replacement, original, edited, steps, orig_pos, edit_pos)
