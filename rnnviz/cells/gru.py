"""PyTorch's GRU (the cuDNN form): R_t ⊙ (H_{t-1} W_hh + b_hh) inside the candidate.

    R_t = σ(X_t W_xr + H_{t-1} W_hr + b_r)      Z_t = σ(X_t W_xz + H_{t-1} W_hz + b_z)
    H̃_t = tanh(X_t W_xh + b_h + R_t ⊙ (H_{t-1} W_hh + b_hh))
    H_t = Z_t ⊙ H_{t-1} + (1 − Z_t) ⊙ H̃_t
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import kernels
from .base import CellSpec, hidden_part, input_rows, keep
from .jacobian import LayerJacobian, arr, diag_sum

GATES = ("r", "z", "n")                       # row order of the blocks in PyTorch's weights
NAMES = {"r": ("W_xr", "W_hr", "b_r"), "z": ("W_xz", "W_hz", "b_z"), "n": ("W_xh", "W_hh", "b_h")}


def step(layer, x_part, h_prev, c_prev, edit=keep):
    """One GRU step on (h,) (module docstring)."""
    xr, xz, xn = x_part.chunk(3, dim=-1)
    hr, hz, hn = hidden_part(layer, h_prev).chunk(3, dim=-1)
    r = edit("gates.r", torch.sigmoid(xr + hr))
    z = edit("gates.z", torch.sigmoid(xz + hz))
    cand = edit("candidate", torch.tanh(xn + r * hn))
    h = edit("h", (1 - z) * cand + z * h_prev)
    return {"gates.r": r, "gates.z": z, "candidate": cand, "h": h}


def recover(layer: nn.GRU, inp: Tensor, ids: Tensor | None, out: Tensor, h0: Tensor,
            c0: Tensor | None) -> dict[str, Tensor]:
    """R_t, Z_t, H̃_t for all steps of a fused GRU run: inputs (T, d) (``ids`` (T,) when they are
    one-hot, to pick rows instead of multiplying), its output H (T, h) and H_{-1} = h0 (h,)."""
    H = out.shape[1]
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    h_prev = torch.cat([h0[None], out[:-1]], dim=0)          # (T, h): H_{t-1}
    x_part = input_rows(w_ih, layer.bias_ih_l0, ids, inp)
    h_part = torch.addmm(layer.bias_hh_l0, h_prev, w_hh.T)   # (T, 3h)
    xr, xz, xn = x_part.split(H, dim=1)
    hr, hz, hn_ = h_part.split(H, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    return {"gates.z": z, "gates.r": r, "candidate": torch.tanh(xn + r * hn_)}


def step_terms(p: dict[str, Tensor], x: Tensor, h_prev: Tensor, c_prev: Tensor | None) -> dict[str, Tensor]:
    """The step-through view's terms from textbook parameters (see rnnviz.views.step_terms)."""
    r = torch.sigmoid(x @ p["W_xr"] + h_prev @ p["W_hr"] + p["b_r"])
    z = torch.sigmoid(x @ p["W_xz"] + h_prev @ p["W_hz"] + p["b_z"])
    xin = x @ p["W_xh"] + p["b_h"]
    hin = h_prev @ p["W_hh"] + p["b_hh"]
    cand = torch.tanh(xin + r * hin)
    h = z * h_prev + (1 - z) * cand
    return {"R_t": r, "Z_t": z, "X_t W_xh + b_h": xin, "H_{t-1} W_hh + b_hh": hin,
            "H̃_t": cand, "H_{t-1}": h_prev, "H_t": h}


@dataclass
class GRUJacobian(LayerJacobian):
    """Qh (T, 3, h) maps dH_t to the adjoints of [h W_hr, h W_hz, h W_hn + b_hn]; Qx (T, 3, h) maps
    dH_t to the pre-activation adjoints [a_r, a_z, a_n]; z (T, h) the direct path Z_t ⊙ ·."""

    Qh: Tensor | None = None
    Qx: Tensor | None = None
    z: Tensor | None = None
    has_kernel = True

    @classmethod
    def build(cls, cell, mod, terms, x):
        H, h_prev, w_hh, w_ih = cls._common(mod, terms, x)
        h = H.shape[1]
        z, r, n = terms["gates.z"], terms["gates.r"], terms["candidate"]
        hn = torch.addmm(mod.bias_hh_l0.detach()[2 * h:].to(H.dtype), h_prev, w_hh[2 * h:].T)
        qn = (1 - z) * (1 - n * n)                       # ∂H/∂a_n
        qz = (h_prev - n) * z * (1 - z)                  # ∂H/∂a_z
        qr = qn * hn * r * (1 - r)                       # ∂H/∂a_r
        Qx = torch.stack([qr, qz, qn], dim=1)
        Qh = torch.stack([qr, qz, qn * r], dim=1)
        return cls(cell, 3, H, h_prev, x, w_hh, w_ih, Qh=Qh, Qx=Qx, z=z)

    def backward_steps(self, E, last, cut):
        T, h = E.shape
        dH = E.clone()
        dpart = torch.zeros(T, 3 * h, dtype=E.dtype)
        kernels.gru_backward(self.w_hh.T.contiguous().numpy(), dH.numpy(), arr(self.Qh), arr(self.z),
                             dpart.numpy(), last, cut, torch.get_num_threads())
        return {"dH": dH, "da": (self.Qx * dH[:, None, :]).reshape(T, 3 * h), "dhh": dpart}

    def _A(self, t: int, scale: float = 1.0) -> Tensor:
        """dH_{t−1} = dH_t @ A, A (h × h), times ``scale`` (folded into the coefficient vectors)."""
        h = self.h.shape[1]
        A = diag_sum(self.Qh[t] * scale, self.w_hh.view(3, h, h))
        A.diagonal().add_(self.z[t], alpha=scale)
        return A

    def chain_step(self, t, inv, M, Mc, scaled, dst, dst_c):
        torch.mm(M, self._A(t, inv), out=dst)
        return dst, None

    def map_step(self, k, A, Ac, below, back):
        h, d = self.h.shape[1], self.w_ih.shape[1]
        ext = A @ diag_sum(self.Qx[k], self.w_ih.view(3, h, d)) if below else None
        return ext, (A @ self._A(k) if back else None), None


SPEC = CellSpec(
    name="gru", title="GRU (PyTorch form)", gates=GATES, names=NAMES, own_hidden_bias=("n",),
    terms=("h", "gates.z", "gates.r", "candidate"), step=step, recover=recover,
    make_layer=lambda d, h: nn.GRU(d, h), jacobian=GRUJacobian,
    step_view=("R_t", "Z_t", "X_t W_xh + b_h", "H_{t-1} W_hh + b_hh", "H̃_t", "H_{t-1}", "H_t"),
    step_terms=step_terms, gate_view=("z", "r"), torch_class=nn.GRU,
    spectrum_blocks=("W_hr", "W_hz", "W_hh"), main_block="W_hh",
    step_jacobian="∂H_t/∂H_{t−1} = diag(Z_t) + diag((H_{t−1} − H̃_t) ⊙ Z_t ⊙ (1−Z_t)) W_hzᵀ "
                  "+ diag((1−Z_t) ⊙ (1−H̃_t²)) (diag(R_t) W_hhᵀ + diag((H_{t−1} W_hh + b_hh) ⊙ R_t ⊙ (1−R_t)) W_hrᵀ): "
                  "the update gate's diag(Z_t) passes the gradient on with no weight matrix, so Z_t near 1 "
                  "carries it far back.",
    latex=(r"R_t = \sigma(X_t W_{xr} + H_{t-1} W_{hr} + b_r) \qquad Z_t = \sigma(X_t W_{xz} + H_{t-1} W_{hz} + b_z)",
           r"\tilde H_t = \tanh\big(X_t W_{xh} + b_h + R_t \odot (H_{t-1} W_{hh} + b_{hh})\big)",
           r"H_t = Z_t \odot H_{t-1} + (1 - Z_t) \odot \tilde H_t"),
    note="GRU in PyTorch's form (what this model computes): R_t multiplies H_{t-1} W_hh + b_hh "
         "after the product; the book puts R_t ⊙ H_{t-1} inside it and has no b_hh.", order=2)
#: The cells of this module (rnnviz.cells collects every module's SPECS).
SPECS = (SPEC,)
