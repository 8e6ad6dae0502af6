"""The Jacobian chain ‖∂H_T/∂H_t‖ (spectral and Frobenius) within one layer, for every t < T."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..serving.deadline import check
from ..model import CharRNN
from ..trace import Trace
from .errors import GradientError
from .fit import RateFit, fit_rate
from .nonfinite import NonFinite, _nonfinite
from .spectral import _SpectralBatch
from .terms import _Layer, _layer_terms
from .whatif import NO_WHATIF, WhatIf, _prepare
from ..names import act_name

#: The exact spectral norm (SVD per step) is used automatically up to this hidden size.
EXACT_SVD_MAX_H = 64
#: Steps per batched spectral-norm chunk of the Jacobian chain (each chunk warm-starts the next).
CHAIN_CHUNK_STEPS = 32


@dataclass
class JacobianChain:
    """‖∂H_T/∂H_t‖ within one layer for every t < T (T = ``end``).

    steps: (n,) long, t = start … end−1 (start = 0 unless ``max_distance`` limits it);
    distance: (n,) = end − t.
    log10_spectral / log10_frobenius: (n,) float64 log10 of the spectral norm (largest singular
        value) and the Frobenius norm; −inf for an exactly zero Jacobian, nan/inf when the forward
        pass itself overflowed. The matrix is renormalised every step (its scale is tracked as a
        float64 logarithm), so vanishing or exploding products never underflow or overflow.
    spectral / frobenius: the same as plain numbers (10**log10; 0 below ~1e−308, inf above ~1e308).
    When the forward pass overflowed (``forward`` lists inf/nan states of this layer), the Jacobian
    at such a state is undefined: every t whose chain t+1 … T passes one is set to nan.
    For the LSTM, ``*_c`` hold ‖∂H_T/∂C_t‖ (C_t perturbed, H_t held), else None.
    fit_spectral / fit_frobenius: per-step factors (RateFit over distances ≥ 1).
    method: "exact SVD" or "subspace iteration (k=…, tol=…)" for the spectral norm.
    """

    end: int
    layer: int
    steps: Tensor
    distance: Tensor
    log10_spectral: Tensor
    log10_frobenius: Tensor
    log10_spectral_c: Tensor | None
    log10_frobenius_c: Tensor | None
    fit_spectral: RateFit
    fit_frobenius: RateFit
    nonfinite: NonFinite
    zeros: int
    method: str
    cell: str
    hidden_size: int
    whatif: WhatIf
    chars: list[str] = field(default_factory=list)
    forward: NonFinite = field(default_factory=NonFinite)

    @property
    def spectral(self) -> Tensor:
        return 10 ** self.log10_spectral

    @property
    def frobenius(self) -> Tensor:
        return 10 ** self.log10_frobenius


@torch.no_grad()
def jacobian_chain(model: CharRNN, text: str | Trace, *, end: int | None = None, layer: int | None = None,
                   whatif: WhatIf | None = None, dtype: torch.dtype | None = None,
                   exact: bool | None = None, max_distance: int | None = None,
                   chunk_elements: int = 1 << 23) -> JacobianChain:
    """‖∂H_T/∂H_t‖₂ and ‖∂H_T/∂H_t‖_F for t = 0 … T−1 within ``layer`` (default: the top layer).

    end: T, the step whose state is differentiated (default: the last step). Layers above never feed
    back, so only this layer's recurrence matters. exact: spectral norm by SVD (default when
    h ≤ EXACT_SVD_MAX_H) or by warm-started block subspace iteration (relative tolerance 1e−6).
    max_distance: only t = T − max_distance … T − 1 (cost is linear in it); default all t < T.
    Cost: one (h × h) @ (h × h) product per step (two for the LSTM) plus the norms, computed in
    chunks of ``chunk_elements`` matrix entries. Truncation and clipping knobs do not apply.
    """
    whatif = whatif or NO_WHATIF
    work, tr = _prepare(model, text, whatif, dtype)
    cfg = work.config
    layer, end, start = _chain_range(cfg.num_layers, len(tr), layer, end, max_distance)
    L = _layer_terms(work, tr, layer)
    h, has_c = cfg.hidden_size, work.has_cell_state
    exact = h <= EXACT_SVD_MAX_H if exact is None else exact
    n = end - start
    chunk = max(1, min(n, CHAIN_CHUNK_STEPS, chunk_elements // (h * h)))
    acc = _ChainNorms(("h", "c") if has_c else ("h",), n, h, L.h.dtype, exact, chunk)
    _walk(L, end, start, acc)
    log_spec, log_fro = acc.log_spec, acc.log_fro
    states = L.h if not has_c else torch.cat([L.h, tr[act_name(layer, "c")]], dim=1)
    fwd = _mask_undefined(states, start, end, (*log_spec.values(), *log_fro.values()))
    steps = torch.arange(start, end)
    distance = end - steps
    both = torch.stack([log_spec["h"], log_fro["h"]], dim=1)
    nf = _nonfinite(torch.where(torch.isneginf(both), torch.zeros_like(both), both), steps)
    return JacobianChain(
        end=end, layer=layer, steps=steps, distance=distance, log10_spectral=log_spec["h"],
        log10_frobenius=log_fro["h"], log10_spectral_c=log_spec.get("c"),
        log10_frobenius_c=log_fro.get("c"),
        fit_spectral=fit_rate(distance, log_spec["h"]), fit_frobenius=fit_rate(distance, log_fro["h"]),
        nonfinite=nf, zeros=int(torch.isneginf(log_fro["h"]).sum()), method=acc.method(exact),
        cell=cfg.cell, hidden_size=h, whatif=whatif, chars=list(tr.chars), forward=fwd)


def _chain_range(num_layers: int, T: int, layer: int | None, end: int | None,
                 max_distance: int | None) -> tuple[int, int, int]:
    """Checked (layer, end, start) of a Jacobian chain over a text of T steps; start is the
    smallest t computed. Raises GradientError for a bad layer, end or max_distance."""
    layer = num_layers - 1 if layer is None else layer
    if not isinstance(layer, int) or not 0 <= layer < num_layers:
        raise GradientError(f"layer must be in 0 … {num_layers - 1}, got {layer!r}.")
    end = T - 1 if end is None else end
    if not isinstance(end, int) or not 1 <= end <= T - 1:
        raise GradientError(f"The end step T must be in 1 … {T - 1} (it needs earlier steps), got {end!r}.")
    if max_distance is not None and (not isinstance(max_distance, int) or max_distance < 1):
        raise GradientError(f"max_distance must be a whole number ≥ 1, got {max_distance!r}.")
    start = 0 if max_distance is None else max(0, end - max_distance)   # smallest t computed
    return layer, end, start


class _ChainNorms:
    """The chain's matrices, a chunk at a time, and their norms.

    ``buf[b]`` (chunk, h, h) holds the pending matrices of block b ("h": ∂H_T/∂H_t, "c": ∂H_T/∂C_t),
    each divided by 10^scale; :meth:`record` notes a matrix's index j = t − start, its Frobenius
    norm and that log10 scale, and every ``chunk`` steps :meth:`flush` takes the spectral norms of
    the whole chunk at once. ``log_spec[b]`` / ``log_fro[b]``: (n,) float64 log10 norms.
    """

    def __init__(self, blocks: tuple[str, ...], n: int, h: int, dt: torch.dtype, exact: bool, chunk: int):
        self.blocks, self.dt, self.chunk = blocks, dt, chunk
        self.finders = {b: _SpectralBatch(h, dt, exact) for b in blocks}
        self.log_fro = {b: torch.empty(n, dtype=torch.float64) for b in blocks}
        self.log_spec = {b: torch.empty(n, dtype=torch.float64) for b in blocks}
        self.buf = {b: torch.empty(chunk, h, h, dtype=dt) for b in blocks}
        self.pending: list[int] = []             # steps j whose matrices sit in buf (same order)
        self.failures: list[int] = []            # chunks where LAPACK failed (reported in ``method``)
        self.scales: list[float] = []            # log10 of the factor divided out of each stored matrix
        self.fro_steps: dict[str, list[float]] = {b: [] for b in blocks}   # ‖stored matrix‖_F, per block
        fin = torch.finfo(dt)
        self.safe_lo, self.safe_hi = math.sqrt(fin.tiny) * 1e4, math.sqrt(fin.max) / 1e4

    def frobenius(self, X: Tensor) -> float:
        """‖X‖_F of an (h, h) matrix, in float64 only when the squares may have under/overflowed."""
        n_ = float(torch.linalg.vector_norm(X))          # in X's dtype: cheap
        if not self.safe_lo < n_ < self.safe_hi:         # squares may have under/overflowed
            n_ = float(torch.linalg.vector_norm(X, dtype=torch.float64))
        return n_

    def record(self, j: int, norms: dict[str, float], log_scale: float) -> None:
        """The matrices just written to ``buf[b][len(pending)]`` belong to index j."""
        self.pending.append(j)
        for b in self.blocks:
            self.fro_steps[b].append(norms[b])
        self.scales.append(log_scale)
        if len(self.pending) == self.chunk:
            self.flush()

    def flush(self) -> None:
        """Norms of every pending matrix into ``log_spec`` / ``log_fro``; empties the chunk."""
        m = len(self.pending)
        if not m:
            return
        idx = torch.tensor(self.pending)
        sc = torch.tensor(self.scales, dtype=torch.float64)
        for b in self.blocks:
            fro = torch.tensor(self.fro_steps[b], dtype=torch.float64)                # (m,)
            spec = self._spectral(b, self.buf[b][:m], fro)
            self.log_fro[b][idx] = sc + torch.log10(fro)
            self.log_spec[b][idx] = sc + torch.log10(spec)
            self.fro_steps[b].clear()
        self.pending.clear()
        self.scales.clear()

    def _spectral(self, b: str, Mb: Tensor, fro: Tensor) -> Tensor:
        """(m,) float64 spectral norms of Mb (m, h, h) given their Frobenius norms fro (m,):
        0 / inf / nan where fro is, NaN where LAPACK fails (counted in ``failures``)."""
        good = torch.isfinite(fro) & (fro > 0)
        spec = torch.full((len(fro),), math.nan, dtype=torch.float64)
        spec[torch.isinf(fro)] = math.inf
        spec[fro == 0] = 0.0
        if bool(good.any()):
            try:
                X, f = (Mb if bool(good.all()) else Mb[good]), fro[good]
                if bool(((f < 1e-6) | (f > 1e6)).any()):
                    # unit Frobenius norm first, so the Krylov products (≈ ‖M‖³) stay in range
                    spec[good] = self.finders[b](X / f.to(self.dt)[:, None, None]) * f
                else:
                    spec[good] = self.finders[b](X)
            except torch.linalg.LinAlgError:     # LAPACK gave up: say so, as NaN, not a crash
                spec[good] = math.nan
                self.failures.append(len(self.pending))
        return spec

    def method(self, exact: bool) -> str:
        """How the spectral norms were computed, and whether LAPACK failed anywhere."""
        f = self.finders["h"]
        method = ("exact SVD" if exact else
                  f"block Krylov Rayleigh–Ritz (k={f.k}, relative tol {f.tol:g})")
        if self.failures:
            method += (f"; the SVD failed to converge in {len(self.failures)} chunk(s): "
                       "those spectral norms are NaN")
        return method


def _walk(L: _Layer, end: int, start: int, acc: _ChainNorms) -> None:
    """Multiply the chain back from ∂H_T/∂H_T = I to ∂H_T/∂H_start, one step at a time, into
    ``acc``'s buffers (no per-step allocation), renormalising every step (the scale is tracked as a
    float64 log10, so the product never under/overflows)."""
    h, dt = L.h.shape[1], L.h.dtype
    has_c = L.has_cell_state
    M = torch.eye(h, dtype=dt)                      # ∂H_T/∂H_t / 10^log_scale, rows: units of H_T
    Mc = torch.zeros(h, h, dtype=dt) if has_c else None
    scaled = torch.empty(h, h, dtype=dt)            # rnn: M · diag(D_t); lstm: the total C_t adjoint
    log_scale = 0.0                                 # log10 of the factor divided out of M (and Mc)
    inv = 1.0                                       # 1 / ‖previous M‖, folded into this step's factors
    for t in range(end, start, -1):                 # from ∂H_T/∂H_t to ∂H_T/∂H_{t−1}
        check()
        i = len(acc.pending)
        M, Mc = _chain_step(L, t, inv, M, Mc, scaled, acc.buf["h"][i], acc.buf["c"][i] if has_c else None)
        norms = {"h": acc.frobenius(M)}
        if has_c:
            norms["c"] = acc.frobenius(Mc)
        inv, norms, divided = _renormalise(M, Mc, norms)
        log_scale += divided
        acc.record(t - 1 - start, norms, log_scale)
        log_scale -= math.log10(inv)
    acc.flush()


def _chain_step(L: _Layer, t: int, inv: float, M: Tensor, Mc: Tensor | None, scaled: Tensor,
                dst: Tensor, dst_c: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """One step back: M = ∂H_T/∂H_t (and Mc = ∂H_T/∂C_t for the LSTM), all (h, h), times ``inv``,
    to step t−1, written into dst (and dst_c). ``scaled`` (h, h) is scratch. Returns (dst, Mc)."""
    if dst.data_ptr() == M.data_ptr():          # chunk of 1 (huge h): never read what we write
        M = M.clone()
    return L.chain_step(t, inv, M, Mc, scaled, dst, dst_c)


def _renormalise(M: Tensor, Mc: Tensor | None,
                 norms: dict[str, float]) -> tuple[float, dict[str, float], float]:
    """Keep the product in range. Returns (inv, norms, divided): either ``inv`` = 1/total, to be
    folded into the next step's coefficient vectors, or — if 1/total would overflow the dtype (a
    subnormal norm) — M (and Mc) divided by total in place, their norms too, and log10(total)."""
    total = math.hypot(*norms.values())
    if not (math.isfinite(total) and total > 0):
        return 1.0, norms, 0.0
    if total * torch.finfo(M.dtype).max > 1e6:
        return 1.0 / total, norms, 0.0
    M.div_(total)
    if Mc is not None:
        Mc.div_(total)
    return 1.0, {b: v / total for b, v in norms.items()}, math.log10(total)


def _mask_undefined(states: Tensor, start: int, end: int, arrays: tuple[Tensor, ...]) -> NonFinite:
    """inf/nan in the forward states (T, h or 2h) up to ``end``; the Jacobian at such a state is
    undefined, so every t (start … end−1) whose chain t+1 … end passes one is set to nan in
    ``arrays`` (each (n,))."""
    fwd = _nonfinite(states[: end + 1])
    if fwd.any:
        bad = ~torch.isfinite(states[: end + 1]).all(dim=1)          # (end+1,)
        # t is undefined if any state in t+1 … end is non-finite (suffix "any" from the end)
        later_bad = torch.flip(torch.cummax(torch.flip(bad.int(), [0]), 0).values, [0]).bool()
        undefined = later_bad[start + 1:end + 1]                    # for t = start … end−1
        for arr in arrays:
            arr[undefined] = math.nan
    return fwd
