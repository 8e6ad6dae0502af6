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
* :data:`TERMS` — cell name → the names of its terms, in the order a trace lists them (``h`` first).

Term names (the suffixes of trace names ``layer{l}.<term>``): ``h`` (H_t), ``c`` (LSTM C_t),
``gates.i/f/o`` (LSTM), ``gates.r/z`` (GRU), ``candidate`` (LSTM C̃_t, GRU H̃_t).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

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


#: Cell name → one step of that cell (see the module docstring).
STEPS: dict[str, StepFn] = {"rnn_tanh": _rnn(torch.tanh), "rnn_relu": _rnn(torch.relu),
                            "gru": _gru, "lstm": _lstm}

#: Cell name → its per-step terms, in the order a trace lists them (``h`` first).
TERMS: dict[str, tuple[str, ...]] = {
    "rnn_tanh": ("h",), "rnn_relu": ("h",),
    "gru": ("h", "gates.z", "gates.r", "candidate"),
    "lstm": ("h", "c", "gates.i", "gates.f", "gates.o", "candidate"),
}


def has_cell_state(cell: str) -> bool:
    """Whether the cell carries a memory cell C_t besides H_t (the LSTM)."""
    return "c" in TERMS[cell]
