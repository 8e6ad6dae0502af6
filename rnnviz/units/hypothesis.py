"""Hypothesis → match (LSTMVis-style): the units on inside a span and off around it, and where
else in the sample they switch on together; see :mod:`rnnviz.units`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..trace import Trace
from .index import UnitIndex
from .refs import UnitRef, UnitsError, activation_matrix


@dataclass(frozen=True)
class SelectedUnit:
    unit: UnitRef
    sign: int          #: +1: on = high activation; −1: on = low activation
    inside_min: float  #: min over the span of sign·z
    around_max: float  #: max around the span of sign·z

    @property
    def label(self) -> str:
        return f"{self.unit.label} {'high' if self.sign > 0 else 'low'}"


@dataclass
class Hypothesis:
    """Units on inside [a, b) and off around it. ``around``: the (lo, hi) window compared."""

    span: tuple[int, int]
    around: tuple[int, int]
    threshold: float | None        #: the θ used (None when no unit separates at any θ ≥ 0)
    auto_threshold: float | None   #: the automatic θ (see module docstring)
    units: list[SelectedUnit]
    separable: int                 #: unit directions that separate at *some* θ ≥ 0


def _auto_threshold(lo: Tensor, hi: Tensor) -> float | None:
    """θ ≥ 0 in the most intervals (lo, hi] (largest such θ), moved to their common middle."""
    ok = hi > lo
    ok &= hi >= 0
    if not bool(ok.any()):
        return None
    lo, hi = lo[ok], hi[ok]
    cand = hi  # coverage of half-open (lo, hi] peaks at some right end
    cover = (lo[None, :] < cand[:, None]) & (cand[:, None] <= hi[None, :])   # (K, K)
    counts = cover.sum(1)
    best = int(counts.max())
    pick = int(torch.nonzero(counts == best).squeeze(1)[torch.argmax(cand[counts == best])])
    members = cover[pick]
    low = max(float(lo[members].max()), 0.0)
    high = float(hi[members].min())
    return (low + high) / 2.0 if low < high else high


def select_units(index: UnitIndex, tr: Trace, a: int, b: int, *, threshold: float | None = None,
                 around: int | None = None, both_signs: bool = True) -> Hypothesis:
    """Units (and directions) on inside ``tr``'s steps [a, b) and off around; see module docstring.

    ``tr`` must come from the same model as ``index``. threshold None → automatic.
    Raises UnitsError for an empty or out-of-range span, or one with nothing around it.
    """
    T = len(tr)
    if not (0 <= a < b <= T):
        raise UnitsError(f"Select a non-empty span inside the text (0 ≤ start < end ≤ {T}); "
                         f"got [{a}, {b}).")
    w = around if around is not None else min(max(b - a, 2), 10)
    if w < 1:
        raise UnitsError("The window around the span must be at least one character.")
    lo_w, hi_w = max(0, a - w), min(T, b + w)
    if lo_w == a and hi_w == b:
        raise UnitsError("The span covers the whole text: nothing is left around it to be off.")
    acts = activation_matrix(tr)
    if acts.shape[1] != index.num_units:
        raise UnitsError("The trace and the index come from different models.")
    z = index.scaled(acts)                                             # (T, U) float64
    signs = (1, -1) if both_signs else (1,)
    sz = torch.cat([s * z for s in signs], dim=1)                      # (T, S·U)
    inside_min = sz[a:b].min(0).values
    around_max = torch.cat([sz[lo_w:a], sz[b:hi_w]]).max(0).values
    separable = int(((inside_min > around_max) & (inside_min >= 0)).sum())
    auto = _auto_threshold(around_max, inside_min)
    theta = auto if threshold is None else float(threshold)
    chosen: list[SelectedUnit] = []
    if theta is not None:
        sel = (inside_min >= theta) & (around_max < theta)
        U = index.num_units
        for k in torch.nonzero(sel).squeeze(1).tolist():
            chosen.append(SelectedUnit(index.units[k % U], signs[k // U],
                                       float(inside_min[k]), float(around_max[k])))
        chosen.sort(key=lambda s: -min(s.inside_min - theta, theta - s.around_max))
    return Hypothesis((a, b), (lo_w, hi_w), theta, auto, chosen, separable)


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    fraction: float    #: mean fraction of selected unit directions on over the run
    left: str
    text: str
    right: str


def find_matches(index: UnitIndex, hyp: Hypothesis, *, min_fraction: float = 1.0, top: int = 20,
                 context: int = 30) -> tuple[list[Match], int]:
    """Runs of the corpus sample where the hypothesis' units switch on together.

    Returns (the best ``top`` matches, the total number of runs). See the module docstring.
    """
    if not hyp.units or hyp.threshold is None:
        return [], 0
    if not 0 < min_fraction <= 1:
        raise UnitsError("min_fraction must be in (0, 1].")
    cols = torch.tensor([index.column(s.unit) for s in hyp.units])
    signs = torch.tensor([float(s.sign) for s in hyp.units])
    on = index.scaled(index.raw(cols), cols) * signs >= hyp.threshold       # (N, k)
    frac = on.double().mean(1)
    need = math.ceil(min_fraction * len(hyp.units) - 1e-9) / len(hyp.units)
    mask = frac >= need - 1e-12
    m = torch.cat([torch.tensor([False]), mask, torch.tensor([False])]).to(torch.int8)
    d = m[1:] - m[:-1]
    starts = torch.nonzero(d == 1).squeeze(1).tolist()
    ends = torch.nonzero(d == -1).squeeze(1).tolist()
    span_len = hyp.span[1] - hyp.span[0]
    runs = [(s, e, float(frac[s:e].mean())) for s, e in zip(starts, ends)]
    runs.sort(key=lambda r: (-r[2], abs((r[1] - r[0]) - span_len), r[0]))
    text = index.text
    out = [Match(s, e, f, text[max(0, s - context):s], text[s:e], text[e:e + context])
           for s, e, f in runs[:max(0, top)]]
    return out, len(runs)
