"""inf/nan reporting: counts and steps of non-finite values in a series, and in the forward states."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..trace import Trace


@dataclass
class NonFinite:
    """inf/nan found in one series. ``steps``: up to 20 steps t with a non-finite value."""

    inf: int = 0
    nan: int = 0
    steps: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.inf or self.nan)

    def describe(self) -> str:
        parts = []
        if self.inf:
            parts.append(f"{self.inf} infinite")
        if self.nan:
            parts.append(f"{self.nan} NaN")
        return " and ".join(parts) + " value(s)" if parts else "all finite"


def _nonfinite(values: Tensor, steps: Tensor | None = None) -> NonFinite:
    """values: (n,) or (n, …); steps: (n,) step index per row (default 0…n−1)."""
    if values.numel() == 0 or bool(torch.isfinite(values.sum())):
        return NonFinite()       # fast path: a finite sum means every value is finite
    v = values.reshape(values.shape[0], -1) if values.dim() > 1 else values.reshape(-1, 1)
    inf = torch.isinf(v)
    nan = torch.isnan(v)
    bad = (inf | nan).any(dim=1)
    idx = bad.nonzero().flatten()
    st = steps[idx] if steps is not None else idx
    return NonFinite(int(inf.sum()), int(nan.sum()), tuple(int(s) for s in st.tolist()[:20]))


def forward_nonfinite(tr: Trace, upto: int | None = None) -> NonFinite:
    """inf/nan in the forward states H_t (and C_t) of every layer, steps 0 … ``upto``."""
    parts = [tr[n] for n in tr.names() if n.endswith(".h") or n.endswith(".c")]
    if upto is not None:
        parts = [p[: upto + 1] for p in parts]
    if all(bool(torch.isfinite(p.sum())) for p in parts):
        return NonFinite()       # fast path, without concatenating the states
    return _nonfinite(torch.cat(parts, dim=1))
