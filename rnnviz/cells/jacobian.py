"""The backward pass of one layer, as the cells see it: :class:`LayerJacobian` is the common
interface; each cell module (rnnviz.cells.rnn, .gru, .lstm, .gru_d2l) subclasses it with its own
coefficients. Row-vector convention: adjoints are rows, pre = x @ w_ih.T + h_prev @ w_hh.T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

#: Entries of the block of per-step matrices the Jacobian chain builds at once (4 MB in float32, so it is still in cache when used).
CHAIN_BLOCK_ELEMENTS = 1 << 20


@dataclass
class LayerJacobian:
    """Everything the backward pass of one layer needs, as (T, …) tensors.

    h: (T, h) H_t; h_prev: (T, h) H_{t-1}; x: (T, d) the layer's input (one-hot X_t or the layer
    below's H_t); w_hh: (G·h, h) and w_ih: (G·h, d) in PyTorch layout. Subclasses add their
    per-step coefficients (built by :meth:`build` from the trace's gates) and implement the steps.
    """

    cell: str
    G: int
    h: Tensor
    h_prev: Tensor
    x: Tensor
    w_hh: Tensor
    w_ih: Tensor

    @classmethod
    def build(cls, cell: str, mod: nn.Module, terms: dict[str, Tensor], x: Tensor) -> "LayerJacobian":
        """From the layer module, the layer's trace terms ({"h": (T, h), "c", "gates.f", …}) and
        its input x (T, d)."""
        raise NotImplementedError

    @staticmethod
    def _common(mod: nn.Module, terms: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(H, H_prev (zero state first), w_hh, w_ih) in H's dtype."""
        H = terms["h"]
        dt = H.dtype
        h_prev = torch.cat([H.new_zeros(1, H.shape[1]), H[:-1]], dim=0)
        return H, h_prev, mod.weight_hh_l0.detach().to(dt), mod.weight_ih_l0.detach().to(dt)

    # -------------------------------------------------------------- one adjoint (norm curve)
    def backward(self, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
        """Reverse-mode recurrence for one adjoint. E: (T, h) external adjoints of H_t, zero after
        ``last``, float32 or float64; ``cuts``: steps that do not pass their adjoint back (truncation).
        Returns dH (T, h) total adjoints, da (T, G·h) pre-activation adjoints of the input path,
        and (LSTM) dC (T, h). Every cell runs its compiled kernel (rnnviz.kernels)."""
        if E.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"the backward pass runs in float32 or float64, not {E.dtype}")
        return self.backward_steps(E, last, _cut_mask(E.shape[0], cuts))

    #: whether the cell's backward is a compiled kernel of rnnviz.kernels (else a torch loop)
    has_kernel = False
    #: whether the layer carries C_t (its adjoints dC travel with dH)
    has_cell_state = False

    def backward_steps(self, E: Tensor, last: int, cut: np.ndarray) -> dict[str, Tensor]:
        """:meth:`backward` with the truncation as a (T,) bool mask (``cut[t]``: step t does not
        pass its adjoint to t−1)."""
        raise NotImplementedError

    def param_grads(self, back: dict[str, Tensor]) -> dict[str, Tensor]:
        """∂L/∂θ of this layer's parameters (module names, e.g. ``weight_ih_l0``) from :meth:`backward`."""
        da, dhh = back["da"], back.get("dhh", back["da"])
        return {"weight_ih_l0": da.T @ self.x, "weight_hh_l0": dhh.T @ self.h_prev,
                "bias_ih_l0": da.sum(0), "bias_hh_l0": dhh.sum(0)}

    # -------------------------------------------------------------- matrix adjoints (chain, map)
    def chain_step(self, t: int, inv: float, M: Tensor, Mc: Tensor | None, scaled: Tensor,
                   dst: Tensor, dst_c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step back of the Jacobian chain: M = ∂H_T/∂H_t (and Mc = ∂H_T/∂C_t), (h, h),
        times ``inv``, to step t−1, written into dst (and dst_c). ``scaled`` (h, h) is scratch."""
        raise NotImplementedError

    def chain_matrix(self, t: int, rows: int, build) -> Tensor:
        """Step t's (rows × d) matrix of the Jacobian chain, from a block of consecutive steps
        lo … t built at once by ``build(lo, hi)`` → (n, rows, d) (a view is fine), n = hi − lo, so
        the per-step work is one matrix product (the chain walks t downwards). The block is kept
        on the instance; it holds at most CHAIN_BLOCK_ELEMENTS entries."""
        lo, Y = self.__dict__.get("_chain_block", (None, None))
        if lo is None or not lo <= t < lo + Y.shape[0]:
            d = self.w_hh.shape[1]
            lo = t + 1 - max(1, min(t + 1, CHAIN_BLOCK_ELEMENTS // (rows * d)))
            Y = build(lo, t + 1)
            self.__dict__["_chain_block"] = (lo, Y)
        return Y[t - lo]

    def map_step(self, k: int, A: Tensor, Ac: Tensor | None, below: bool,
                 back: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Rows (R, h) of dℓ/dH_k (and dℓ/dC_k, excluding H_k's share) → (adjoint sent to the layer
        below (R, d) if ``below``, dℓ/dH_{k−1} and dℓ/dC_{k−1} if ``back``)."""
        raise NotImplementedError


def _cut_mask(T: int, cuts: set[int]) -> np.ndarray:
    cut = np.zeros(T, dtype=np.bool_)
    cut[list(cuts)] = True
    return cut


def diag_sum(coefs: Tensor, W: Tensor) -> Tensor:
    """Σ_g diag(coefs[g]) W[g]: coefs (G, h), W (G, h, d) → (h, d), without a (G, h, d) temporary."""
    out = W[0] * coefs[0][:, None]
    for g in range(1, coefs.shape[0]):
        out.addcmul_(W[g], coefs[g][:, None])
    return out


def arr(x: Tensor) -> np.ndarray:
    """A numpy view (zero-copy where already contiguous) for the kernels."""
    return x.contiguous().numpy()
