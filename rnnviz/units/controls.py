"""The correlational side of the scorecard (:mod:`rnnviz.units.scorecard`): every unit's statistic
for a feature, its block-permutation p-value, the random-init control and the Holm correction.

Shapes: T characters, U units in scope (columns in :func:`rnnviz.units.unit_refs` order), F features.

Statistic (:func:`observed`)
    A binary feature (0/1 values) gets the rank AUC of "activation high ⇒ feature on", exactly the
    Mann–Whitney form of :mod:`rnnviz.units.finder`: AUC_u = (Σ_{t on} R_tu − n₁(n₁+1)/2)/(n₁n₀),
    R the average ranks (ties share their mean rank). A graded feature gets Pearson r_u =
    (1/T) Σ_t z(f)_t Z_tu (population z-scores; a constant unit has Z = 0, so r = 0).
    The **effect** is the distance from "no relation": |AUC − ½| or |r|.

Block permutation (:func:`shift_null`)
    The feature is shifted circularly by s steps against the activations, for every admissible
    s with min_shift ≤ s ≤ T − min_shift: a circular shift keeps the autocorrelation of both
    series (only the one wrap point is cut), which an i.i.d. shuffle of characters would destroy.
    All shifts at once are the circular cross-correlation of the feature with each column, by FFT.
    Null mean μ_u and sd σ_u of the statistic over the shifts; the observed value at s = 0.
    ``p_raw`` = erfc(|obs − μ| / (σ√2)), the two-sided normal tail of the permutation null (its
    resolution is not limited by the number of shifts, which a correction over hundreds of units
    needs); ``p_perm`` = (1 + #{s: |null_s − μ| ≥ |obs − μ|}) / (1 + #shifts), the empirical
    two-sided permutation p-value (resolution 1/(1 + #shifts)). σ = 0 (a constant unit) gives 1.
    A p_raw far below 1/#shifts is the normal approximation's extrapolation, not a measured
    frequency: read it as "beyond every shift", and use it only against the corrected threshold.

Random-init control (:func:`random_init_effects`)
    ``controls`` untrained models of the same config, each built by :func:`rnnviz.model.build_model`
    (the initialisation training starts from) with its own seed drawn from the caller's
    torch.Generator, traced over the same text; the effect of every unit in scope of every
    control model is pooled, and ``random_init_p95`` is the 95th percentile of that pool.

Correction (:func:`holm`)
    Holm's step-down over every (unit, feature) pair tested in one call: p_(i) sorted ascending,
    adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)). It controls the family-wise error rate
    like Bonferroni and rejects at least as much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..model import CharRNN, build_model
from ..trace import trace_ids
from .index import average_ranks
from .refs import UnitRef

#: Columns per FFT block (bounds the temporary memory to ~T·_BLOCK complex numbers).
_BLOCK = 128


@dataclass(frozen=True)
class Feature:
    """One feature over the text. values (T,) float64; kind "auc" (binary) or "r" (graded);
    active (T,) bool: where the feature is on (binary: value > ½; graded: value > its median, or
    = its maximum when the median is the maximum); rule: that rule in words."""

    name: str
    values: Tensor
    kind: str
    active: Tensor
    rule: str


@dataclass
class UnitMatrix:
    """Activations A (T, U) with their average ranks and z-scores, computed when first needed."""

    acts: Tensor
    _ranks: Tensor | None = field(default=None, repr=False)
    _z: Tensor | None = field(default=None, repr=False)

    @property
    def ranks(self) -> Tensor:
        if self._ranks is None:
            self._ranks = average_ranks(self.acts.float()).double()
        return self._ranks

    @property
    def z(self) -> Tensor:
        if self._z is None:
            a = self.acts.double()
            sd = a.std(0, unbiased=False)
            safe = torch.where(sd > 0, sd, torch.ones_like(sd))
            self._z = torch.where(sd > 0, (a - a.mean(0)) / safe, torch.zeros_like(a))
        return self._z


def feature_vector(feat: Feature) -> Tensor:
    """What the statistic correlates with the columns: the 0/1 label (AUC) or z(f) (r)."""
    if feat.kind == "auc":
        return feat.active.double()
    v = feat.values
    return (v - v.mean()) / v.std(unbiased=False)


def _to_stat(raw: Tensor, feat: Feature) -> Tensor:
    """Σ_t v_t M_tu (ranks or z-scores) → AUC or r."""
    T = feat.values.numel()
    if feat.kind == "auc":
        n1 = int(feat.active.sum())
        n0 = T - n1
        return (raw - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return (raw / T).clamp(-1.0, 1.0)


def _columns(mat: UnitMatrix, feat: Feature) -> Tensor:
    return mat.ranks if feat.kind == "auc" else mat.z


def observed(mat: UnitMatrix, feat: Feature) -> Tensor:
    """(U,) float64 AUC or r of every column (see the module docstring)."""
    return _to_stat(feature_vector(feat) @ _columns(mat, feat), feat)


def effect(stat: Tensor, kind: str) -> Tensor:
    """Distance from no relation: |AUC − ½| or |r|."""
    return (stat - 0.5).abs() if kind == "auc" else stat.abs()


def shift_null(mat: UnitMatrix, feat: Feature, min_shift: int) -> tuple[Tensor, Tensor, int]:
    """(p_raw (U,), p_perm (U,), number of shifts) of the block-permutation control (module doc)."""
    T = feat.values.numel()
    shifts = torch.arange(min_shift, T - min_shift + 1)
    vf = torch.fft.rfft(feature_vector(feat)).conj()
    cols = _columns(mat, feat)
    obs = observed(mat, feat)
    p_raw = torch.ones(cols.shape[1], dtype=torch.float64)
    p_perm = torch.ones_like(p_raw)
    for c0 in range(0, cols.shape[1], _BLOCK):
        block = cols[:, c0:c0 + _BLOCK]
        corr = torch.fft.irfft(torch.fft.rfft(block, dim=0) * vf[:, None], n=T, dim=0)
        null = _to_stat(corr[shifts], feat)                       # (S, k)
        mu, sd = null.mean(0), null.std(0, unbiased=False)
        dev = (obs[c0:c0 + _BLOCK] - mu).abs()
        ok = sd > 1e-12
        zs = torch.where(ok, dev / torch.where(ok, sd, torch.ones_like(sd)), torch.zeros_like(sd))
        p_raw[c0:c0 + _BLOCK] = torch.where(ok, torch.special.erfc(zs / math.sqrt(2.0)), torch.ones_like(sd))
        ge = ((null - mu).abs() >= dev * (1 - 1e-9)).sum(0)
        p_perm[c0:c0 + _BLOCK] = torch.where(ok, (1.0 + ge) / (1.0 + len(shifts)), torch.ones_like(sd))
    return p_raw, p_perm, len(shifts)


def holm(p: Tensor) -> Tensor:
    """Holm-adjusted p-values of a flat tensor of p-values (same shape; see the module docstring)."""
    flat = p.reshape(-1).double()
    m = flat.numel()
    order = torch.argsort(flat, stable=True)
    scaled = (flat[order] * torch.arange(m, 0, -1, dtype=torch.float64)).clamp(max=1.0)
    adj = torch.cummax(scaled, 0).values
    out = torch.empty_like(flat)
    out[order] = adj
    return out.reshape(p.shape)


def scope_matrix(model: CharRNN, cache: dict[str, Tensor], units: Sequence[UnitRef]) -> Tensor:
    """(T, U) activations of ``units`` (whole (layer, kind) blocks or single units) from a trace cache."""
    blocks: dict[str, list[int]] = {}
    for u in units:
        blocks.setdefault(u.tensor_name, []).append(u.unit)
    H = model.config.hidden_size
    return torch.cat([cache[name] if cols == list(range(H)) else cache[name][:, cols]
                      for name, cols in blocks.items()], dim=1)


def control_seeds(gen: torch.Generator, controls: int) -> list[int]:
    """The seeds of the random-init control models, drawn from ``gen`` (in order)."""
    return [int(s) for s in torch.randint(0, 2**31 - 1, (controls,), generator=gen)]


@torch.inference_mode()
def random_init_effects(model: CharRNN, ids: Tensor, feats: Sequence[Feature], units: Sequence[UnitRef],
                        seeds: Sequence[int]) -> dict[str, Tensor]:
    """Feature name → pooled effects (len(seeds)·U,) of every in-scope unit of untrained models of
    ``model``'s config, one per seed (:func:`rnnviz.model.build_model`), over the same ids."""
    pooled: dict[str, list[Tensor]] = {f.name: [] for f in feats}
    for s in seeds:
        fresh = build_model(model.config, seed=s)
        cache, _ = trace_ids(fresh, ids, gates=fresh.has_cell_state)
        mat = UnitMatrix(scope_matrix(fresh, cache, units))
        for f in feats:
            pooled[f.name].append(effect(observed(mat, f), f.kind))
    return {k: torch.cat(v) for k, v in pooled.items()}


def p95(values: Tensor) -> float:
    """The 95th percentile (linear interpolation, as numpy's default)."""
    return float(torch.quantile(values.double(), 0.95))
