"""One step of each recurrent cell, written once: the per-step maths every stepped loop uses.

A layer is one PyTorch module (nn.RNN / nn.GRU / nn.LSTM with one layer, see :mod:`rnnviz.model`);
its parameters are read, never written. Shapes: h hidden size, G gate blocks (1, 3 or 4), d the
layer's input size.

* :func:`input_part` — X_t W_ih^T + b_ih for every step at once, (T, G·h): the part of every gate
  pre-activation that does not depend on the state.
* :data:`STEPS` — cell name → ``step(layer, x_part_t, h_prev, c_prev, edit) -> {term: (h,)}``.
  Terms are computed in dependency order and each passes through ``edit(term, value)`` right after
  it is computed, so a caller can read or replace it (rnnviz.trace's hooks); what ``edit`` returns
  is what the rest of the step uses.
* :data:`RECOVER` — cell name → ``recover(layer, inp, ids, out, h0, c0) -> {term: (T, h)}``: every
  gate, candidate and C_t of a whole fused run (nn.GRU / nn.LSTM give H_t only) from one batched
  matmul, since every gate at step t is a function of X_t and H_{t-1} only; None for the plain RNN.
* :data:`TERMS` — cell name → the names of its terms, in the order a trace lists them (``h`` first).

Term names (the suffixes of trace names ``layer{l}.<term>``): ``h`` (H_t), ``c`` (LSTM C_t),
``gates.i/f/o`` (LSTM), ``gates.r/z`` (GRU), ``candidate`` (LSTM C̃_t, GRU H̃_t).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .deadline import check

#: ``edit(term, value) -> value``: sees every term of a step; returns the value the step goes on with.
Edit = Callable[[str, Tensor], Tensor]
StepFn = Callable[[nn.RNNBase, Tensor, Tensor, "Tensor | None", Edit], dict[str, Tensor]]


def _keep(term: str, value: Tensor) -> Tensor:
    return value


def input_part(layer: nn.RNNBase, inp: Tensor) -> Tensor:
    """X W_ih^T + b_ih for inputs (T, d) → (T, G·h), PyTorch's gate order (see model.py)."""
    return torch.addmm(layer.bias_ih_l0, inp, layer.weight_ih_l0.T)


def _hidden_part(layer: nn.RNNBase, h_prev: Tensor) -> Tensor:
    """H_{t-1} W_hh^T + b_hh, (G·h,)."""
    return torch.addmv(layer.bias_hh_l0, layer.weight_hh_l0, h_prev)


def _rnn(phi: Callable[[Tensor], Tensor]) -> StepFn:
    def step(layer, x_part, h_prev, c_prev, edit=_keep):
        """H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)."""
        return {"h": edit("h", phi(x_part + _hidden_part(layer, h_prev)))}
    return step


def _gru(layer, x_part, h_prev, c_prev, edit=_keep):
    """PyTorch's GRU: R, Z gates; H̃_t = tanh(X W_xh + b_h + R ⊙ (H W_hh + b_hh)); H_t = Z ⊙ H + (1 − Z) ⊙ H̃."""
    xr, xz, xn = x_part.chunk(3)
    hr, hz, hn = _hidden_part(layer, h_prev).chunk(3)
    r = edit("gates.r", torch.sigmoid(xr + hr))
    z = edit("gates.z", torch.sigmoid(xz + hz))
    cand = edit("candidate", torch.tanh(xn + r * hn))
    h = edit("h", (1 - z) * cand + z * h_prev)
    return {"gates.r": r, "gates.z": z, "candidate": cand, "h": h}


def _lstm(layer, x_part, h_prev, c_prev, edit=_keep):
    """LSTM (d2l §10.1): I, F, O gates, C̃_t; C_t = F ⊙ C_{t-1} + I ⊙ C̃_t; H_t = O ⊙ tanh(C_t)."""
    pi, pf, pg, po = (x_part + _hidden_part(layer, h_prev)).chunk(4)     # torch order: i, f, g, o
    i = edit("gates.i", torch.sigmoid(pi))
    f = edit("gates.f", torch.sigmoid(pf))
    o = edit("gates.o", torch.sigmoid(po))
    cand = edit("candidate", torch.tanh(pg))
    c = edit("c", f * c_prev + i * cand)
    h = edit("h", o * torch.tanh(c))
    return {"gates.i": i, "gates.f": f, "gates.o": o, "candidate": cand, "c": c, "h": h}


def linear_recurrence(f: Tensor, u: Tensor, c0: Tensor) -> Tensor:
    """All C_t of C_t = f_t ⊙ C_{t-1} + u_t, for f, u of shape (T, h) and C_{-1} = c0 (h,).

    Two-level scan with no division (so no blow-up when a gate is 0): the steps are cut into
    ~√T chunks; pass 1 runs the recurrence inside every chunk at once from a zero state, also
    keeping the running product of f; pass 2 carries each chunk's end state into the next, and
    C = local + running_product ⊙ carry. About 2√T small vectorised steps instead of T.
    Returns (T, h); equal to the plain loop up to float rounding.
    """
    T, H = u.shape
    K = max(1, math.isqrt(T))
    n = -(-T // K)
    pad = n * K - T
    if pad:
        f = torch.cat([f, f.new_ones(pad, H)])
        u = torch.cat([u, u.new_zeros(pad, H)])
    fc, uc = f.view(n, K, H), u.view(n, K, H)
    local = torch.empty_like(uc)
    prod = torch.empty_like(fc)
    local[:, 0], prod[:, 0] = uc[:, 0], fc[:, 0]
    for k in range(1, K):   # pass 1: every chunk at once, from a zero state
        torch.addcmul(uc[:, k], fc[:, k], local[:, k - 1], out=local[:, k])
        torch.mul(prod[:, k - 1], fc[:, k], out=prod[:, k])
    carry = torch.empty(n, H, dtype=u.dtype)
    prev = c0
    for m in range(n):      # pass 2: the state entering chunk m
        check()             # a request past its deadline stops here (rnnviz.deadline)
        carry[m] = prev
        prev = torch.addcmul(local[m, -1], prod[m, -1], prev)
    c = torch.addcmul(local, prod, carry[:, None, :])
    return c.reshape(n * K, H)[:T]


def _recover_gru(layer: nn.GRU, inp: Tensor, ids: Tensor | None, out: Tensor, h0: Tensor,
                 c0: Tensor | None) -> dict[str, Tensor]:
    """R_t, Z_t, H̃_t for all steps of a fused GRU run: inputs (T, d) (``ids`` (T,) when they are
    one-hot, to pick rows instead of multiplying), its output H (T, h) and H_{-1} = h0 (h,)."""
    H = out.shape[1]
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    h_prev = torch.cat([h0[None], out[:-1]], dim=0)          # (T, h): H_{t-1}
    x_part = (w_ih.T[ids] if ids is not None else inp @ w_ih.T) + layer.bias_ih_l0
    h_part = torch.addmm(layer.bias_hh_l0, h_prev, w_hh.T)   # (T, 3h)
    xr, xz, xn = x_part.split(H, dim=1)
    hr, hz, hn_ = h_part.split(H, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    return {"gates.z": z, "gates.r": r, "candidate": torch.tanh(xn + r * hn_)}


def _recover_lstm(layer: nn.LSTM, inp: Tensor, ids: Tensor | None, out: Tensor, h0: Tensor,
                  c0: Tensor | None) -> dict[str, Tensor]:
    """C_t, I_t, F_t, O_t, C̃_t for all steps of a fused LSTM run (arguments as for the GRU;
    C_{-1} = c0 (h,))."""
    H = out.shape[1]
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    # Every gate pre-activation at once: X_t W_x· + H_{t-1} W_h· + b (T, 4h). Layer 0's
    # one-hot X_t picks a row of W_ih^T, so biases fold into that small (|V|, 4h) table.
    bias = layer.bias_ih_l0 + layer.bias_hh_l0
    pre = (w_ih.T + bias)[ids] if ids is not None else torch.addmm(bias, inp, w_ih.T)
    pre[1:].addmm_(out[:-1], w_hh.T)                     # += H_{t-1} W_hh, in place
    pre[0].addmv_(w_hh, h0)
    gate_i = torch.sigmoid(pre[:, :H])                       # torch order: i, f, g, o
    gate_f = torch.sigmoid(pre[:, H:2 * H])
    cand = torch.tanh(pre[:, 2 * H:3 * H])
    # C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t: an elementwise linear recurrence.
    return {"c": linear_recurrence(gate_f, gate_i * cand, c0), "gates.i": gate_i, "gates.f": gate_f,
            "gates.o": torch.sigmoid(pre[:, 3 * H:]), "candidate": cand}


#: Cell name → one step of that cell (see the module docstring).
STEPS: dict[str, StepFn] = {"rnn_tanh": _rnn(torch.tanh), "rnn_relu": _rnn(torch.relu),
                            "gru": _gru, "lstm": _lstm}

#: Cell name → its per-step terms, in the order a trace lists them (``h`` first).
TERMS: dict[str, tuple[str, ...]] = {
    "rnn_tanh": ("h",), "rnn_relu": ("h",),
    "gru": ("h", "gates.z", "gates.r", "candidate"),
    "lstm": ("h", "c", "gates.i", "gates.f", "gates.o", "candidate"),
}


#: Cell name → gate recovery from a fused run (see the module docstring); None: nothing to recover.
RECOVER: dict[str, Callable[..., dict[str, Tensor]] | None] = {
    "rnn_tanh": None, "rnn_relu": None, "gru": _recover_gru, "lstm": _recover_lstm}


def has_cell_state(cell: str) -> bool:
    """Whether the cell carries a memory cell C_t besides H_t (the LSTM)."""
    return "c" in TERMS[cell]
