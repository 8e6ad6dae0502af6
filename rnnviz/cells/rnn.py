"""The plain RNN (d2l §9.4): H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h), φ = tanh or ReLU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .. import kernels
from .base import CellSpec, keep, hidden_part
from .jacobian import LayerJacobian, arr

_PHI = {"rnn_tanh": torch.tanh, "rnn_relu": torch.relu}


def _step(phi: Callable[[Tensor], Tensor]):
    def step(layer, x_part, h_prev, c_prev, edit=keep):
        """H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)."""
        return {"h": edit("h", phi(x_part + hidden_part(layer, h_prev)))}
    return step


def _step_terms(phi: Callable[[Tensor], Tensor]):
    def step_terms(p: dict[str, Tensor], x: Tensor, h_prev: Tensor, c_prev: Tensor | None) -> dict[str, Tensor]:
        """The step-through view's terms from textbook parameters (see rnnviz.views.step_terms)."""
        xw, hw, b = x @ p["W_xh"], h_prev @ p["W_hh"], p["b_h"]
        pre = xw + hw + b
        return {"X_t W_xh": xw, "H_{t-1} W_hh": hw, "b_h": b, "pre-activation": pre, "H_t": phi(pre)}
    return step_terms


@dataclass
class RNNJacobian(LayerJacobian):
    """D (T, h) = φ'(pre): dH_{t−1} = (dH_t ⊙ D_t) W_hh."""

    D: Tensor | None = None
    has_kernel = True

    @classmethod
    def build(cls, cell, mod, terms, x):
        H, h_prev, w_hh, w_ih = cls._common(mod, terms, x)
        D = (1 - H * H) if cell == "rnn_tanh" else (H > 0).to(H.dtype)
        return cls(cell, 1, H, h_prev, x, w_hh, w_ih, D=D)

    def backward_steps(self, E, last, cut):
        dH = E.clone()
        da = torch.zeros_like(dH)
        kernels.rnn_backward(self.w_hh.T.contiguous().numpy(), dH.numpy(), arr(self.D), da.numpy(),
                             last, cut, torch.get_num_threads())
        return {"dH": dH, "da": da}

    def chain_step(self, t, inv, M, Mc, scaled, dst, dst_c):
        torch.mul(M, (self.D[t] * inv)[None, :], out=scaled)      # M diag(D_t) W_hh = M A_t
        torch.mm(scaled, self.w_hh, out=dst)
        return dst, None

    def map_step(self, k, A, Ac, below, back):
        ext = A @ (self.D[k][:, None] * self.w_ih) if below else None
        nxt = A @ (self.D[k][:, None] * self.w_hh) if back else None
        return ext, nxt, None


def _spec(cell: str, order: int) -> CellSpec:
    phi = _PHI[cell]
    return CellSpec(
        name=cell, title=f"RNN ({cell[4:]})", gates=("h",), names={"h": ("W_xh", "W_hh", "b_h")},
        terms=("h",), step=_step(phi), recover=None,
        make_layer=lambda d, h: nn.RNN(d, h, nonlinearity=cell[4:]), jacobian=RNNJacobian,
        step_view=("X_t W_xh", "H_{t-1} W_hh", "b_h", "pre-activation", "H_t"),
        step_terms=_step_terms(phi), torch_class=nn.RNN, torch_kwargs={"nonlinearity": cell[4:]},
        spectrum_blocks=("W_hh",), main_block="W_hh",
        derivative_note="tanh′ ≤ 1" if cell == "rnn_tanh" else "ReLU′ is 0 or 1",
        step_jacobian="∂H_t/∂H_{t−1} = diag(φ′(X_t W_xh + H_{t−1} W_hh + b_h)) W_hhᵀ: every step "
                      "multiplies by W_hhᵀ and squashes by φ′, so the product vanishes or explodes.",
        latex=(r"H_t = \%s(X_t W_{xh} + H_{t-1} W_{hh} + b_h)" % ("tanh" if cell == "rnn_tanh" else "mathrm{ReLU}"),), order=order)


RNN_TANH = _spec("rnn_tanh", 0)
RNN_RELU = _spec("rnn_relu", 1)
#: The cells of this module (rnnviz.cells collects every module's SPECS).
SPECS = (RNN_TANH, RNN_RELU)
