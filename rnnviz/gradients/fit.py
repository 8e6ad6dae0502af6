"""Per-step rate: a log-linear least-squares fit of a norm curve against distance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RateFit:
    """Least-squares fit log‖·‖ ≈ a + d·log(factor) over distances d (finite, non-zero points only).

    factor: the per-step multiplier (< 1 vanishing, > 1 exploding); nan when fewer than 2 points.
    intercept: the fitted value at distance 0. d_min/d_max: the fitted range. n_points: how many
    points were used; n_excluded: points in that range skipped for being 0, inf or nan.
    r2: coefficient of determination of the log-linear fit.
    """

    factor: float
    log10_factor: float
    intercept: float
    d_min: int
    d_max: int
    n_points: int
    n_excluded: int
    r2: float

    def steps_to_shrink(self, ratio: float = 0.01) -> float:
        """Steps after which the fitted curve has shrunk (or grown) by ``ratio`` (e.g. 1 %)."""
        if not math.isfinite(self.log10_factor) or self.log10_factor == 0:
            return math.inf
        return abs(math.log10(ratio) / self.log10_factor)


def fit_rate(distance: Tensor, log10_values: Tensor, d_min: int = 1, d_max: int | None = None) -> RateFit:
    """Fit the per-step factor of a curve. distance: (n,) ints; log10_values: (n,) float64
    (−inf for exact zeros, nan/inf for non-finite norms)."""
    d = distance.double()
    y = log10_values.double()
    in_range = d >= d_min
    if d_max is not None:
        in_range &= d <= d_max
    ok = in_range & torch.isfinite(y)
    n = int(ok.sum())
    excluded = int(in_range.sum()) - n
    if n < 2:
        return RateFit(math.nan, math.nan, math.nan, d_min, d_max or d_min, n, excluded, math.nan)
    x, yy = d[ok], y[ok]
    xm, ym = x.mean(), yy.mean()
    sxx = ((x - xm) ** 2).sum()
    if sxx == 0:
        return RateFit(math.nan, math.nan, math.nan, int(x.min()), int(x.max()), n, excluded, math.nan)
    slope = float(((x - xm) * (yy - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    resid = yy - (intercept + slope * x)
    sst = float(((yy - ym) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / sst if sst > 0 else 1.0
    return RateFit(10 ** slope, slope, 10 ** intercept if intercept < 300 else math.inf,
                   int(x.min()), int(x.max()), n, excluded, r2)


def _log10(v: Tensor) -> Tensor:
    """log10 in float64 keeping 0 → −inf, inf → inf, nan → nan."""
    with torch.no_grad():
        return torch.log10(v.double())
