"""Batched largest singular values of a sequence of matrices (exact SVD or warm-started block Krylov)."""

from __future__ import annotations

import torch

from ..serving.deadline import check
from torch import Tensor

#: Relative size below which a new Krylov direction counts as already in the basis.
_DEFLATE = 1e-4


class _SpectralBatch:
    """Largest singular values of a sequence of matrices (out × in), computed chunk by chunk.

    ``exact``: batched SVD. Otherwise a block Krylov (block Lanczos-style) Rayleigh–Ritz method on
    the *left* singular space — the outputs H_T, whose top directions settle quickly along a
    backprop chain: the basis [U, (M Mᵀ)U, (M Mᵀ)²U, …] (k columns per block, orthonormalised
    block by block) grows until the largest Ritz value σ₁(Qᵀ M) changes by at most ``tol``
    (relative) for every matrix of the chunk. U is the previous chunk's top-k left Ritz vectors.
    Ritz values are lower bounds that converge to σ₁ from below. The very first block comes from
    an exact SVD of the first matrix; a matrix still unconverged at ``max_depth`` gets an exact SVD,
    so the answer is never silently approximate beyond ``tol``. Batched: LAPACK is called per chunk
    and Krylov depth, not per step.
    """

    def __init__(self, n_out: int, dtype: torch.dtype, exact: bool, k: int = 4, tol: float = 1e-7,
                 max_depth: int = 12):
        g = torch.Generator().manual_seed(0)
        self.exact = exact
        self.k = min(k, n_out)
        self.U: Tensor | None = None
        self.n_random = 2
        self._random = torch.randn(self.n_random, n_out, generator=g, dtype=dtype)
        self.tol, self.max_depth = tol, max_depth
        self.depths: list[int] = []
        self.fallbacks = 0

    def __call__(self, M: Tensor) -> Tensor:
        """M: (B, out, in), finite. Returns (B,) float64 spectral norms.

        Basis blocks are kept as orthonormal *rows* (B, k, out): CPU batched matmuls of thin
        row-major blocks are an order of magnitude faster than the column-major equivalents.
        """
        if M.shape[0] == 0:
            return torch.empty(0, dtype=torch.float64)
        if self.exact:
            return torch.linalg.matrix_norm(M.double(), ord=2)
        if self.U is None:
            self.U = torch.linalg.svd(M[0], full_matrices=False)[0][:, : self.k].T.contiguous()
        basis, proj = self._start(M)
        s, converged, last = self._grow(M, basis, proj)
        self.depths.append(len(last[0]))
        if not bool(converged.all()):
            bad = ~converged
            self.fallbacks += int(bad.sum())
            s[bad] = torch.linalg.matrix_norm(M[bad].double(), ord=2)
        self._warm_start(*last)
        return s

    def _start(self, M: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The first basis block: U plus a few fixed random directions (so no matrix's top
        direction can be missed entirely), orthonormalised. Returns ([(B, k+r, out)], [(B, k+r, in)])."""
        n_out, B = M.shape[1], M.shape[0]
        start = torch.cat([self.U, self._random[: min(self.n_random, max(n_out - self.k, 0))]], dim=0)
        Q = torch.linalg.qr(start.T)[0].T                      # (k+r, out), orthonormal rows
        basis = [Q.expand(B, -1, -1).contiguous()]             # (B, k+r, out)
        proj = [torch.matmul(Q, M)]                            # (B, k+r, in): blocks of Qᵀ M
        return basis, proj

    def _grow(self, M: Tensor, basis: list[Tensor],
              proj: list[Tensor]) -> tuple[Tensor, Tensor, tuple[list[Tensor], list[Tensor]]]:
        """Extend ``basis`` / ``proj`` until every Ritz value σ₁ settles (or the depth or the
        dimension runs out); a matrix whose value has settled leaves the batch, so later blocks are
        built for the unsettled ones only. Returns (B,) float64 Ritz values, (B,) bool converged,
        and the last matrix's (basis, proj) blocks (for the warm start)."""
        n_out, B = M.shape[1], M.shape[0]
        out = torch.empty(B, dtype=torch.float64)
        converged = torch.zeros(B, dtype=torch.bool)
        active = torch.arange(B)
        last = None
        prev = None
        for depth in range(self.max_depth):
            check()
            P = torch.cat(proj, dim=1).double()
            # σ₁(P) from the small Gram matrix P Pᵀ (float64): far cheaper than an SVD of P
            s = torch.linalg.eigvalsh(P @ P.transpose(1, 2))[:, -1].clamp_min(0).sqrt()
            out[active] = s
            if prev is not None:
                done = (s - prev).abs() <= self.tol * s.clamp_min(1e-300)
                converged[active[done]] = True
                if bool(done[-1]) and last is None and int(active[-1]) == B - 1:
                    last = ([b[-1] for b in basis], [p[-1] for p in proj])
                if bool(done.all()):
                    break
                if bool(done.any()):                            # go on with the unsettled ones
                    keep = ~done
                    active, M, s = active[keep], M[keep], s[keep]
                    basis[:] = [b[keep] for b in basis]
                    proj[:] = [p[keep] for p in proj]
            prev = s
            if depth == self.max_depth - 1 or sum(b.shape[1] for b in basis) + basis[0].shape[1] > n_out:
                break                                           # unconverged ones get an exact SVD
            Z = _next_block(M, basis, proj[-1])
            basis.append(Z)
            proj.append(torch.bmm(Z, M))
        if last is None:
            last = ([b[-1] for b in basis], [p[-1] for p in proj])
        return out, converged, last

    def _warm_start(self, basis: list[Tensor], proj: list[Tensor]) -> None:
        """Warm start for the next chunk: the top-k left Ritz vectors of the last matrix, from its
        basis blocks [(k_i, out)] and their projections [(k_i, in)]."""
        P = torch.cat(proj, dim=0)                              # (K, in)
        Ub = torch.linalg.svd(P, full_matrices=False)[0][:, : self.k]   # (K, k)
        ritz = Ub.T @ torch.cat(basis, dim=0)                   # (k, out)
        self.U = torch.linalg.qr(ritz.T)[0].T.contiguous()


def _orthogonalise(Z: Tensor, basis: list[Tensor]) -> Tensor:
    """Z (B, k, out) minus its components along every block of ``basis`` (one Gram–Schmidt pass)."""
    for Qb in basis:
        Z = torch.baddbmm(Z, torch.bmm(Z, Qb.transpose(1, 2)), Qb, alpha=-1)
    return Z


def _next_block(M: Tensor, basis: list[Tensor], proj_last: Tensor) -> Tensor:
    """The next Krylov block (B, k, out) = (M Mᵀ Q_last)ᵀ, orthonormalised against ``basis``;
    directions already in the basis come back as zero rows."""
    Z = torch.bmm(proj_last, M.transpose(1, 2))             # (B, k, out) = (M Mᵀ Q_last)ᵀ
    scale = torch.linalg.matrix_norm(Z).clamp_min(1e-300)  # (B,)
    for _ in range(2):                                      # block Gram–Schmidt, twice
        Z = _orthogonalise(Z, basis)
    # rank-revealing orthonormalisation: directions already in the basis (an invariant
    # subspace was reached) are dropped as zero rows, never normalised noise
    # (via the small float64 Gram matrix Z Zᵀ: its eigenvalues are σ², its eigenvectors
    # whiten Z — much cheaper than a batched SVD of the wide Z)
    Zd = Z.double()
    lam, E = torch.linalg.eigh(Zd @ Zd.transpose(1, 2))
    keep = lam > (_DEFLATE * scale.double()[:, None]) ** 2
    Wz = E * torch.where(keep, lam.clamp_min(1e-300).rsqrt(), torch.zeros_like(lam))[:, None, :]
    Z = _orthogonalise((Wz.transpose(1, 2) @ Zd).to(Z.dtype), basis)
    norms = torch.linalg.vector_norm(Z, dim=2, keepdim=True)
    return torch.where(norms > 0.5, Z / norms.clamp_min(1e-30), torch.zeros_like(Z))
