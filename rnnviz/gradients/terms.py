"""Per-layer terms of the backward pass and the per-step Jacobians built from them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import CharRNN
from ..trace import Trace


@dataclass
class _Layer:
    """Everything the backward pass of one layer needs, as (T, …) tensors (row-vector convention).

    w_hh: (G·h, h) and w_ih: (G·h, d) PyTorch layouts (pre = x @ w_ih.T + h_prev @ w_hh.T), G = 1/3/4.
    rnn:  D (T, h) = φ'(pre).
    gru:  Qh (T, 3, h) maps dH_t to the adjoints of [h W_hr, h W_hz, h W_hn + b_hn]; Qx (T, 3, h) maps
          dH_t to the pre-activation adjoints [a_r, a_z, a_n]; z (T, h) the direct path Z_t ⊙ ·.
    lstm: K (T, h) = O_t ⊙ (1 − tanh² C_t) (dC_t += dH_t ⊙ K), P (T, 4, h): pre-activation adjoints
          are [dC·P_i, dC·P_f, dC·P_g, dH·P_o]; f (T, h) the forget gate (dC_{t−1} = dC_t ⊙ F_t).
    """

    cell: str
    G: int
    h: Tensor            # (T, h) H_t
    h_prev: Tensor       # (T, h) H_{t-1}
    x: Tensor            # (T, d) input of the layer (one-hot X_t or the layer below's H_t)
    w_hh: Tensor
    w_ih: Tensor
    D: Tensor | None = None
    Qh: Tensor | None = None
    Qx: Tensor | None = None
    z: Tensor | None = None
    K: Tensor | None = None
    P: Tensor | None = None
    f: Tensor | None = None


def _layer_terms(model: CharRNN, tr: Trace, l: int) -> _Layer:
    cfg = model.config
    mod = model.layers[l]
    H = tr[f"layer{l}.h"]
    T, h = H.shape
    dt = H.dtype
    h_prev = torch.cat([H.new_zeros(1, h), H[:-1]], dim=0)
    x = model.one_hot(tr.ids).to(dt) if l == 0 else tr[f"layer{l - 1}.h"]
    w_hh = mod.weight_hh_l0.detach().to(dt)
    w_ih = mod.weight_ih_l0.detach().to(dt)
    cell = cfg.cell
    if cell.startswith("rnn"):
        D = (1 - H * H) if cell == "rnn_tanh" else (H > 0).to(dt)
        return _Layer(cell, 1, H, h_prev, x, w_hh, w_ih, D=D)
    if cell == "gru":
        z, r, n = tr[f"layer{l}.gates.z"], tr[f"layer{l}.gates.r"], tr[f"layer{l}.candidate"]
        hn = torch.addmm(mod.bias_hh_l0.detach()[2 * h:].to(dt), h_prev, w_hh[2 * h:].T)
        qn = (1 - z) * (1 - n * n)                       # ∂H/∂a_n
        qz = (h_prev - n) * z * (1 - z)                  # ∂H/∂a_z
        qr = qn * hn * r * (1 - r)                       # ∂H/∂a_r
        Qx = torch.stack([qr, qz, qn], dim=1)
        Qh = torch.stack([qr, qz, qn * r], dim=1)
        return _Layer(cell, 3, H, h_prev, x, w_hh, w_ih, Qh=Qh, Qx=Qx, z=z)
    c = tr[f"layer{l}.c"]
    i, f, o, g = (tr[f"layer{l}.gates.i"], tr[f"layer{l}.gates.f"], tr[f"layer{l}.gates.o"],
                  tr[f"layer{l}.candidate"])
    tc = torch.tanh(c)
    K = torch.addcmul(o, o * tc, tc, value=-1)                  # O_t ⊙ (1 − tanh² C_t)
    P = torch.empty(T, 4, h, dtype=dt)                           # written slot by slot, no temporaries
    torch.mul(g, torch.addcmul(i, i, i, value=-1), out=P[:, 0])  # C̃ ⊙ I(1 − I)
    P[0, 1].zero_()                                              # C_{−1} = 0
    torch.mul(c[:-1], torch.addcmul(f, f, f, value=-1)[1:], out=P[1:, 1])   # C_{t−1} ⊙ F(1 − F)
    torch.addcmul(i, i, g * g, value=-1, out=P[:, 2])            # I ⊙ (1 − C̃²)
    torch.mul(tc, torch.addcmul(o, o, o, value=-1), out=P[:, 3])  # tanh C ⊙ O(1 − O)
    return _Layer(cell, 4, H, h_prev, x, w_hh, w_ih, K=K, P=P, f=f)


def _diag_sum(coefs: Tensor, W: Tensor) -> Tensor:
    """Σ_g diag(coefs[g]) W[g]: coefs (G, h), W (G, h, d) → (h, d), without a (G, h, d) temporary."""
    out = W[0] * coefs[0][:, None]
    for g in range(1, coefs.shape[0]):
        out.addcmul_(W[g], coefs[g][:, None])
    return out


def _step_matrices(L: _Layer, t: int, scale: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """The per-step Jacobians for matrix adjoints (rows × h) at step t, times ``scale``.

    rnn/gru: (A, None) with dH_{t−1} = dH_t @ A, A (h × h).
    lstm:    (B, Cm) with dH_{t−1} = dC_t^tot @ B + dH_t @ Cm, both (h × h).
    The scale is folded into the per-unit coefficient vectors (h values), not the matrices.
    """
    h = L.h.shape[1]
    if L.cell.startswith("rnn"):
        return (L.D[t] * scale)[:, None] * L.w_hh, None
    if L.cell == "gru":
        A = _diag_sum(L.Qh[t] * scale, L.w_hh.view(3, h, h))
        A.diagonal().add_(L.z[t], alpha=scale)
        return A, None
    W = L.w_hh.view(4, h, h)
    P = L.P[t] * scale
    return _diag_sum(P[:3], W[:3]), W[3] * P[3][:, None]


def _input_matrices(L: _Layer, t: int) -> tuple[Tensor, Tensor | None]:
    """Like :func:`_step_matrices` but towards the layer's input (h × d): the adjoint sent below."""
    h = L.h.shape[1]
    d = L.w_ih.shape[1]
    if L.cell.startswith("rnn"):
        return L.D[t][:, None] * L.w_ih, None
    if L.cell == "gru":
        return _diag_sum(L.Qx[t], L.w_ih.view(3, h, d)), None
    W = L.w_ih.view(4, h, d)
    return _diag_sum(L.P[t, :3], W[:3]), W[3] * L.P[t, 3][:, None]
