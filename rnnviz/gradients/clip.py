"""Clipping of parameter gradients: d2l's global-norm θ and element-wise ±c, reported."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor


@dataclass
class ClipReport:
    """What clipping the parameter gradients of the curve's loss did.

    grad_norm: ‖g‖ over all parameters before clipping; grad_norm_after: after.
    factor: the global-norm factor min(1, θ/‖g‖) (1.0 when only element-wise clipping is on).
    fraction_clipped: share of parameter entries changed by element-wise clipping (0 when off).
    per_parameter: name → (norm before, norm after), PyTorch parameter names.
    """

    grad_norm: float
    grad_norm_after: float
    factor: float
    fraction_clipped: float
    per_parameter: dict[str, tuple[float, float]]
    theta: float | None = None
    value: float | None = None
    layer: int | None = None        #: the layer whose parameters were clipped (None: all parameters)


def _clip(grads: dict[str, Tensor], theta: float | None, value: float | None,
          layer: int | None = None) -> ClipReport:
    before = {k: float(v.double().norm()) for k, v in grads.items()}
    total = math.sqrt(sum(n * n for n in before.values())) if all(
        math.isfinite(n) for n in before.values()) else math.nan
    if any(math.isinf(n) for n in before.values()):
        total = math.inf
    factor = 1.0
    clipped = dict(grads)
    if theta is not None:
        if math.isnan(total):
            factor = math.nan
        elif total > theta:
            factor = theta / total  # 0 when total is inf
        clipped = {k: v * factor for k, v in clipped.items()}
    n_changed, n_total = 0, 0
    if value is not None:
        for k, v in clipped.items():
            n_changed += int((v.abs() > value).sum())
            n_total += v.numel()
            clipped[k] = v.clamp(-value, value)  # nan stays nan
    after = {k: float(v.double().norm()) for k, v in clipped.items()}
    total_after = math.sqrt(sum(n * n for n in after.values())) if all(
        math.isfinite(n) for n in after.values()) else math.nan
    return ClipReport(total, total_after, factor, n_changed / n_total if n_total else 0.0,
                      {k: (before[k], after[k]) for k in grads}, theta, value, layer)
