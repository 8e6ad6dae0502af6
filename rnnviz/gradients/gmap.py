"""The gradient map G[t, k] = ‖∂ℓ_t/∂H_k‖: all losses back-propagated at once, rows capped by cost."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..serving.deadline import check
from ..model import CharRNN
from ..trace import Trace
from .errors import GradientError
from .nonfinite import NonFinite, _nonfinite, forward_nonfinite
from ..cells import spec
from .terms import _Layer, _layer_terms
from .whatif import NO_WHATIF, WhatIf, _prepare
from ..names import act_name

#: Gradient map cost cap: estimated multiply–adds of the batched backward pass. Above it the loss
#: rows are downsampled (every r-th loss step) until the estimate fits. ~2·10¹⁰ is ≈1–2 s on 2 cores.
MAP_MAX_MACS = 2.0e10
#: At most this many loss rows in a gradient map (memory: rows × T × layers float32 numbers).
MAP_MAX_ROWS = 1000
#: A gradient map needs one column per step; longer texts are refused.
MAP_MAX_STEPS = 20_000


@dataclass
class GradientMap:
    """G[t, k] = ‖∂ℓ_t/∂H_k‖ for loss steps t (rows) and every step k (columns), per layer.

    loss_steps: (R,) long, the loss step of each row, ascending (every ``stride``-th loss step,
        always including the last one, T−2).
    maps[l]: (R, T) float32 for layer l; entries with k > t are 0 (ℓ_t does not depend on H_k) —
        ``upstream`` (R, T) bool marks k ≤ t. Within the upstream cells 0 is an exact zero
        (underflow, dead ReLUs, truncation), inf/nan are counted in ``nonfinite``.
    stride / downsampled / message: row downsampling chosen to respect MAP_MAX_MACS and
        MAP_MAX_ROWS; ``message`` explains it in plain words (None when every loss is a row).
    estimated_macs: the cost estimate (multiply–adds) that drove the choice.
    """

    loss_steps: Tensor
    maps: list[Tensor]
    upstream: Tensor
    stride: int
    downsampled: bool
    message: str | None
    estimated_macs: float
    nonfinite: dict[str, NonFinite]
    zeros: dict[str, int]
    chars: list[str]
    cell: str
    num_layers: int
    hidden_size: int
    whatif: WhatIf
    forward: NonFinite = field(default_factory=NonFinite)


def _ordinal(n: int) -> str:
    """2 → "2nd", 3 → "3rd", 11 → "11th", 21 → "21st"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _map_macs(T: int, rows: list[int], h: int, L: int, cell: str, truncate: int | None) -> float:
    per_row_steps = sum(min(t + 1, truncate) if truncate else t + 1 for t in rows)
    mult = spec(cell).map_cost
    return float(per_row_steps) * h * h * mult * (2 * L - 1)


def plan_map_rows(T: int, h: int, num_layers: int, cell: str, truncate: int | None = None,
                  max_macs: float = MAP_MAX_MACS, max_rows: int = MAP_MAX_ROWS) -> tuple[list[int], int, float]:
    """Which loss steps become rows: (rows, stride, estimated multiply–adds).

    Every loss step t = 0 … T−2 if the estimate Σ_rows (steps back) · h² · (2 for LSTM) · (2L−1)
    is within ``max_macs`` and there are at most ``max_rows`` rows; otherwise every stride-th step
    counted back from T−2. Raises GradientError when even 2 rows do not fit or T > MAP_MAX_STEPS.
    """
    if T < 2:
        raise GradientError("The text needs at least 2 characters for a gradient map.")
    if T > MAP_MAX_STEPS:
        raise GradientError(f"The gradient map has one column per step; {T:,} steps are over the "
                            f"{MAP_MAX_STEPS:,}-step cap. Use a shorter text.")
    stride = max(1, math.ceil((T - 1) / max_rows))
    while True:
        rows = list(range(T - 2, -1, -stride))[::-1]
        macs = _map_macs(T, rows, h, num_layers, cell, truncate)
        if macs <= max_macs or len(rows) <= 2:
            break
        stride = max(stride + 1, int(stride * math.sqrt(macs / max_macs)))
    if macs > max_macs * 4:
        raise GradientError(f"A gradient map for {T:,} steps of this {num_layers}-layer {cell} with "
                            f"h = {h} would take ~{macs:.1e} multiply–adds, over the cap even with "
                            "2 rows. Use a shorter text.")
    return rows, stride, macs


@torch.no_grad()
def gradient_map(model: CharRNN, text: str | Trace, *, whatif: WhatIf | None = None,
                 dtype: torch.dtype | None = None, max_macs: float = MAP_MAX_MACS,
                 max_rows: int = MAP_MAX_ROWS) -> GradientMap:
    """G[t, k] = ‖∂ℓ_t/∂H_k‖ for all k ≤ t, for every layer (see :class:`GradientMap`).

    All losses are back-propagated together: one adjoint row per loss, stepping back in time over
    all layers at once, so step k costs one (active rows × h) @ (h × h) product per layer (two for
    the LSTM, plus one towards the layer below). Rows become active at their own step t and, with
    truncation k, leave k steps later, so cost ≈ R·T/2·h² (R rows) and grows as T²·h².
    Above ``max_macs`` multiply–adds the rows are downsampled (``message`` says so).
    """
    whatif = whatif or NO_WHATIF
    work, tr = _prepare(model, text, whatif, dtype)
    cfg = work.config
    T, h, Lnum = len(tr), cfg.hidden_size, cfg.num_layers
    every = whatif.truncate if whatif.layer is None else None       # rows leave once every layer is cut
    rows, stride, macs = plan_map_rows(T, h, Lnum, cfg.cell, every, max_macs, max_rows)
    R = len(rows)
    layers = [_layer_terms(work, tr, l) for l in range(Lnum)]
    row_t = torch.tensor(rows, dtype=torch.long)
    # output adjoint of each loss at its own step: (R, h)
    probs = tr.probs[row_t]
    dO = probs.clone()
    dO[torch.arange(R), tr.ids[row_t + 1]] -= 1
    inject = dO @ work.output.weight.detach().to(layers[0].h.dtype)
    cut = (whatif.layer, whatif.truncate) if whatif.truncate and whatif.layer is not None else None
    maps = _map_backward(layers, rows, inject, T, every, cut)
    upstream = torch.arange(T)[None, :] <= row_t[:, None]
    nonfin, zeros = {}, {}
    for l in range(Lnum):
        vals = maps[l][upstream]
        nonfin[act_name(l, "h")] = _nonfinite(maps[l].masked_fill(~upstream, 0.0), row_t)
        zeros[act_name(l, "h")] = int((vals == 0).sum())
    message = None
    if stride > 1:
        message = (f"The map shows every {_ordinal(stride)} loss step ({R} of {T - 1} rows) to stay under "
                   f"~{max_macs:.0e} multiply–adds (documented cap MAP_MAX_MACS); each shown row is exact.")
    return GradientMap(row_t, maps, upstream, stride, stride > 1, message, macs, nonfin, zeros,
                       list(tr.chars), cfg.cell, Lnum, h, whatif, forward_nonfinite(tr))


def _map_backward(layers: list[_Layer], rows: list[int], inject: Tensor, T: int,
                  trunc: int | None, cut: tuple[int, int] | None = None) -> list[Tensor]:
    """Back-propagate every loss row at once. rows: the R loss steps (ascending); inject (R, h): each
    row's output adjoint at its own step; trunc: every layer truncated k steps back from each row's
    step; cut: (layer l, k), only layer l's recurrence cut, every k steps back from each row's step
    (as the norm curve's truncation of one layer). Returns per layer (R, T) float32 ‖∂ℓ_t/∂H_k‖
    (0 for k > t)."""
    R, h, Lnum = len(rows), inject.shape[1], len(layers)
    dt = layers[0].h.dtype
    has_c = layers[0].has_cell_state
    maps = [torch.zeros(R, T, dtype=torch.float32) for _ in range(Lnum)]
    cur = [torch.zeros(R, h, dtype=dt) for _ in range(Lnum)]       # dH^l_k for the active rows
    curc = [torch.zeros(R, h, dtype=dt) for _ in range(Lnum)] if has_c else None
    row_of = {t: j for j, t in enumerate(rows)}
    row_steps = torch.tensor(rows)
    j0 = R          # rows j0 … j1−1 are active (t_j ≥ k and, with truncation, t_j − k < trunc)
    j1 = R
    for k in range(rows[-1], -1, -1):
        check()
        if k in row_of:                    # loss ℓ_k starts here: a fresh row
            j0 = row_of[k]
            for l in range(Lnum):
                cur[l][j0].zero_()
                if has_c:
                    curc[l][j0].zero_()
            cur[Lnum - 1][j0] += inject[j0]
        if trunc:
            while j1 > j0 and rows[j1 - 1] - k >= trunc:
                j1 -= 1
        if j1 <= j0:
            continue
        _map_step(layers, k, slice(j0, j1), cur, curc, maps)
        if cut is not None:                # H_k of layer l does not depend on H_{k−1}: drop the carry
            l, every = cut
            drop = (row_steps[j0:j1] - k + 1) % every == 0
            cur[l][j0:j1][drop] = 0
            if curc is not None:
                curc[l][j0:j1][drop] = 0
    return maps


def _map_step(layers: list[_Layer], k: int, sl: slice, cur: list[Tensor], curc: list[Tensor] | None,
              maps: list[Tensor]) -> None:
    """Step k of :func:`_map_backward` for the active rows ``sl``, top layer down: record the norms
    of dH^l_k in column k of ``maps[l]``, then move ``cur`` (and ``curc``, the LSTM's dC) to k−1."""
    ext = None
    for l in range(len(layers) - 1, -1, -1):
        A = cur[l][sl]
        if ext is not None:
            A += ext
        maps[l][sl, k] = A.double().norm(dim=1).float()
        ext, nxt, nxt_c = layers[l].map_step(k, A, curc[l][sl] if curc is not None else None, l > 0, k > 0)
        if nxt is not None:
            cur[l][sl] = nxt
        if nxt_c is not None:
            curc[l][sl] = nxt_c
