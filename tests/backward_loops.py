"""Plain torch loops of the backward recurrences the compiled kernels (rnnviz.kernels) run.

A second implementation of the same recurrence from the same per-step coefficients
(:class:`rnnviz.cells.LayerJacobian` subclasses), written as per-step tensor operations: the tests
run the gradient numbers through both and compare each with autograd. Not part of the product.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnviz.cells.gru import GRUJacobian
from rnnviz.cells.gru_d2l import D2LGRUJacobian
from rnnviz.cells.lstm import LSTMJacobian
from rnnviz.cells.rnn import RNNJacobian


def rnn_loop(jac: RNNJacobian, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """dH_{t−1} += (dH_t ⊙ D_t) W_hh, newest step first."""
    dH = E.clone()
    rows = dH.unbind(0)
    WT = jac.w_hh.T.contiguous()
    da = torch.zeros_like(dH)
    das, D = da.unbind(0), jac.D.unbind(0)
    for t in range(last, 0, -1):
        torch.mul(rows[t], D[t], out=das[t])
        if t not in cuts:
            rows[t - 1].addmv_(WT, das[t])
    if last >= 0:
        torch.mul(rows[0], D[0], out=das[0])
    return {"dH": dH, "da": da}


def gru_loop(jac: GRUJacobian, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """PyTorch's GRU: dH_{t−1} += dH_t ⊙ Z_t + (Qh_t ⊙ dH_t) W_hh."""
    T, h = E.shape
    dH = E.clone()
    rows = dH.unbind(0)
    WT = jac.w_hh.T.contiguous()
    dpart = torch.zeros(T, 3, h, dtype=E.dtype)
    dps, Qh, z = dpart.unbind(0), jac.Qh.unbind(0), jac.z.unbind(0)
    flat = dpart.view(T, 3 * h).unbind(0)
    for t in range(last, 0, -1):
        torch.mul(Qh[t], rows[t], out=dps[t])
        if t not in cuts:
            rows[t - 1].addcmul_(rows[t], z[t]).addmv_(WT, flat[t])
    if last >= 0:
        torch.mul(Qh[0], rows[0], out=dps[0])
    return {"dH": dH, "da": (jac.Qx * dH[:, None, :]).reshape(T, 3 * h), "dhh": dpart.view(T, 3 * h)}


def lstm_loop(jac: LSTMJacobian, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """dC_t = dC_{t+1} ⊙ F_{t+1} + dH_t ⊙ K_t; pre-activation adjoints from P; dH_{t−1} += da_t W_hh."""
    T, h = E.shape
    dH = E.clone()
    rows = dH.unbind(0)
    WT = jac.w_hh.T.contiguous()
    da = torch.zeros(T, 4, h, dtype=E.dtype)
    dC = torch.zeros_like(dH)
    dcs, das, flat = dC.unbind(0), da.unbind(0), da.view(T, 4 * h).unbind(0)
    P3, Po, K, f = jac.P[:, :3].unbind(0), jac.P[:, 3].unbind(0), jac.K.unbind(0), jac.f.unbind(0)
    carry = torch.zeros(h, dtype=E.dtype)
    for t in range(last, -1, -1):
        torch.addcmul(carry, rows[t], K[t], out=dcs[t])
        torch.mul(P3[t], dcs[t], out=das[t][:3])
        torch.mul(Po[t], rows[t], out=das[t][3])
        if t > 0 and t not in cuts:
            rows[t - 1].addmv_(WT, flat[t])
            torch.mul(dcs[t], f[t], out=carry)
        else:
            carry.zero_()
    return {"dH": dH, "da": da.view(T, 4 * h), "dC": dC}


def d2l_loop(jac: D2LGRUJacobian, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """The book's GRU, through its per-step adjoint (D2LGRUJacobian._adjoint: two products a step)."""
    dH = E.clone()
    da = torch.zeros(E.shape[0], 3 * E.shape[1], dtype=E.dtype)
    for t in range(last, -1, -1):
        da[t], prev = jac._adjoint(t, dH[t])
        if t > 0 and t not in cuts:
            dH[t - 1] += prev
    return {"dH": dH, "da": da}


#: Jacobian class → its torch loop.
LOOPS = {RNNJacobian: rnn_loop, GRUJacobian: gru_loop, LSTMJacobian: lstm_loop, D2LGRUJacobian: d2l_loop}


def torch_backward(jac, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """:meth:`LayerJacobian.backward` through the torch loop of ``jac``'s cell (a drop-in for tests)."""
    return LOOPS[type(jac)](jac, E, last, cuts)
