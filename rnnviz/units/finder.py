"""Unit finder: rank every unit of an index by how well it tracks a feature (Pearson r and the
rank-based AUC); see :mod:`rnnviz.units`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import features as F
from .index import _CHUNK, UnitIndex
from .refs import UnitRef, UnitsError


@dataclass(frozen=True)
class UnitScore:
    unit: UnitRef
    r: float       #: Pearson correlation with the feature
    auc: float     #: AUC of "activation high ⇒ positive"; < 0.5 means the unit is low on it


@dataclass
class FinderResult:
    """The ranking of all U units for one feature over an index's sample.

    r, auc: (U,) float64 over every unit (column order); top: the best ``top`` as UnitScore.
    """

    feature: str
    by: str
    label_rule: str
    n: int
    n_positive: int
    r: Tensor
    auc: Tensor
    top: list[UnitScore]
    seconds: float


def label_for(name: str, values: Tensor) -> tuple[Tensor, str]:
    """The 0/1 label an AUC is computed against (see the module docstring), and its rule."""
    if F.feature_kind(name) == "binary":
        return values > 0.5, f"{name} = 1"
    med = float(values.median())
    if med > 0:
        return values > med, f"{name} > {med:g} (the sample median)"
    return values > 0, f"{name} > 0"


def correlations(index: UnitIndex, values: Tensor) -> Tensor:
    """Pearson r of ``values`` (N,) with every unit: (U,) float64. Raises UnitsError if constant."""
    f = values.double()
    sd = f.std(unbiased=False)
    if not float(sd) > 0:
        raise UnitsError("The feature is constant over the sample, so nothing can track it.")
    fz = (f - f.mean()) / sd
    out = torch.empty(index.num_units, dtype=torch.float64)
    for c0 in range(0, index.num_units, 4 * _CHUNK):
        out[c0:c0 + 4 * _CHUNK] = fz @ index.z[:, c0:c0 + 4 * _CHUNK].double()
    return (out / len(f)).clamp(-1.0, 1.0)


def aucs(index: UnitIndex, label: Tensor) -> Tensor:
    """AUC of every unit for a boolean label (N,), exactly via ranks: (U,) float64."""
    label = label.bool()
    n1 = int(label.sum())
    n0 = label.numel() - n1
    if n1 == 0 or n0 == 0:
        raise UnitsError("The feature's label is all " + ("off" if n1 == 0 else "on") +
                         " over the sample, so an AUC is undefined.")
    N = label.numel()
    use_neg = n1 > n0
    rows = torch.nonzero(~label if use_neg else label).squeeze(1)
    sums = torch.empty(index.num_units, dtype=torch.float64)
    for c0 in range(0, index.num_units, 4 * _CHUNK):
        sums[c0:c0 + 4 * _CHUNK] = index.ranks[rows, c0:c0 + 4 * _CHUNK].double().sum(0)
    if use_neg:
        sums = N * (N + 1) / 2.0 - sums
    return (sums - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def rank_units(index: UnitIndex, feature: str, *, by: str = "auc", top: int = 20,
               values: Tensor | None = None) -> FinderResult:
    """Rank every unit of ``index`` by how well it tracks ``feature`` (a features name, or
    ``regex:<pattern>``); ``values`` (N,) overrides the computed feature. by: "auc" or "r".
    Raises UnitsError / FeatureError with a user-facing message."""
    t0 = time.perf_counter()
    if by not in ("auc", "r"):
        raise UnitsError(f"rank by 'auc' or 'r', not {by!r}")
    if values is None:
        values = index.feature(feature)
    if values.shape != (len(index),):
        raise UnitsError(f"feature values must have shape ({len(index)},), got {tuple(values.shape)}")
    label, rule = label_for(feature, values) if not feature.startswith(F.REGEX_PREFIX) \
        else (values > 0.5, "inside a match")
    r = correlations(index, values)
    auc = aucs(index, label)
    score = (auc - 0.5).abs() if by == "auc" else r.abs()
    tie = r.abs() if by == "auc" else (auc - 0.5).abs()
    order = sorted(range(index.num_units), key=lambda j: (-float(score[j]), -float(tie[j]), j))
    best = [UnitScore(index.units[j], float(r[j]), float(auc[j])) for j in order[:max(0, top)]]
    return FinderResult(feature, by, rule, len(index), int(label.sum()), r, auc, best,
                        time.perf_counter() - t0)
