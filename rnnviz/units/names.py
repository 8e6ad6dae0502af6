"""Named units for a heatmap: which unit of a (T, h) state tracks which built-in feature *on this
text* (a cheap feature ranking of the traced text, no corpus needed).

For every built-in feature (:mod:`rnnviz.features`) that varies over the text, Pearson's r between
the feature and every unit over the T steps; the unit with the largest |r| is named after the
feature when |r| ≥ ``min_r`` (default max(0.5, 4 / √T): over h ≈ 256 units and T steps the
largest |r| of pure noise is about 3.5 / √T, so a short text needs a stronger match). A unit keeps only its strongest feature; at most ``max_named`` units
are named, strongest first. Texts shorter than ``min_steps`` name nothing (a few steps make large
chance correlations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..features import FEATURE_NAMES, features
from ..names import parse_act_name

def unit_name(layer: int, kind: str, unit: int) -> str:
    """The one name of a unit on every view: ``"L0 h[203]"`` (layer, state, index).

    ``kind``: "h", "c", or a gate ("f", "gates.f" → "f"). Hidden states, the Units table and
    chart, Step-through and Compare all label units with it, so a unit read on one view is found
    by the same name on the others."""
    kind = kind.rsplit(".", 1)[-1]
    return f"L{int(layer)} {kind}[{int(unit)}]"


def state_of(name: str) -> tuple[int, str]:
    """(layer, state) of a trace name: ``"layer1.c"`` → (1, "c"), ``"layer0.gates.f"`` → (0, "f")."""
    layer, state = parse_act_name(name)
    return layer, state.rsplit(".", 1)[-1]


def pretty(feature: str) -> str:
    """A feature's name for a label: "paren depth", not "paren_depth"."""
    return feature.replace("_", " ")


@dataclass(frozen=True)
class NamedUnit:
    """Unit ``unit`` follows ``feature`` on this text with Pearson ``r`` (negative: low on it)."""

    unit: int
    feature: str
    r: float

    @property
    def label(self) -> str:
        return pretty(self.feature) + (" (low)" if self.r < 0 else "")


def _standardise(a: Tensor) -> Tensor:
    """(T, k) columns centred and scaled to unit norm (constant columns → 0)."""
    a = a.double() - a.double().mean(dim=0, keepdim=True)
    norm = a.norm(dim=0)
    ok = norm > 1e-12
    return torch.where(ok, a / torch.where(ok, norm, torch.ones_like(norm)), torch.zeros_like(a))


def name_units(values: Tensor, text: str, *, min_r: float | None = None, max_named: int = 8,
               min_steps: int = 20) -> list[NamedUnit]:
    """Units of ``values`` (T, h), T = len(text), that track a built-in feature of ``text``.

    Returns at most ``max_named`` :class:`NamedUnit`, strongest |r| first, one per unit."""
    T = values.shape[0]
    if T != len(text):
        raise ValueError(f"values has {T} steps but the text {len(text)} characters")
    if T < min_steps or values.shape[1] == 0:
        return []
    min_r = max(0.5, 4 / T ** 0.5) if min_r is None else min_r
    feats = features(text, FEATURE_NAMES)
    names = [n for n in FEATURE_NAMES if float(feats[n].std()) > 0]
    if not names:
        return []
    F = _standardise(torch.stack([feats[n] for n in names], dim=1))   # (T, F)
    r = F.T @ _standardise(values)                                     # (F, h)
    best_r, best_u = r.abs().max(dim=1)
    found = sorted(((float(best_r[i]), names[i], int(best_u[i])) for i in range(len(names))),
                   reverse=True)
    out: list[NamedUnit] = []
    for strength, name, unit in found:
        if strength < min_r or len(out) >= max_named:
            break
        if any(n.unit == unit for n in out):
            continue
        out.append(NamedUnit(unit, name, float(r[names.index(name), unit])))
    return out
