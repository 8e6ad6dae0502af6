"""Backpropagation through time for one adjoint: the compiled loop (:mod:`rnnviz.kernels`) or the
torch loop, layer by layer from the output down."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import kernels
from ..model import CharRNN
from ..trace import Trace
from .errors import GradientError
from .terms import _Layer, _layer_terms
from .whatif import WhatIf, _prepare

LOSSES = ("last", "step", "sum")


def _cuts(last: int, truncate: int | None) -> set[int]:
    """Steps t whose dependence on H_{t−1} is cut by truncation (windows end at ``last``)."""
    if not truncate:
        return set()
    return {t for t in range(last, 0, -1) if (last - t + 1) % truncate == 0}


def _backward_layer(L: _Layer, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """Reverse-mode recurrence of one layer for one adjoint.

    E: (T, h) external adjoints of H_t (from the output or from the layer above), zero after ``last``.
    Returns dH (T, h) total adjoints, da (T, G·h) pre-activation adjoints of the input path (for the
    layer below and the weight gradients), dhh (T, G·h) adjoints of h_prev @ w_hh.T (+ b_hh) and, for
    the LSTM, dC (T, h) total adjoints of C_t.
    Runs the compiled loop of :mod:`rnnviz.kernels` (the per-step product split over torch's thread
    count) when numba is there, else the torch loop; both give the same numbers up to rounding.
    """
    if kernels.enabled() and E.dtype in (torch.float32, torch.float64):
        return _backward_layer_compiled(L, E, last, cuts)
    return _backward_layer_torch(L, E, last, cuts)


def _backward_layer_compiled(L: _Layer, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """:func:`_backward_layer` through :mod:`rnnviz.kernels` (numpy views of the same tensors)."""
    T, h = E.shape
    threads = torch.get_num_threads()
    dH = E.clone()
    WT = L.w_hh.T.contiguous().numpy()
    cut = np.zeros(T, dtype=np.bool_)
    cut[list(cuts)] = True
    arr = lambda x: x.contiguous().numpy()  # noqa: E731  (zero-copy where already contiguous)
    out: dict[str, Tensor] = {"dH": dH}
    if L.cell.startswith("rnn"):
        da = torch.zeros_like(dH)
        kernels.rnn_backward(WT, dH.numpy(), arr(L.D), da.numpy(), last, cut, threads)
        out["da"] = out["dhh"] = da
    elif L.cell == "gru":
        dpart = torch.zeros(T, 3 * h, dtype=E.dtype)
        kernels.gru_backward(WT, dH.numpy(), arr(L.Qh), arr(L.z), dpart.numpy(), last, cut, threads)
        out["da"] = (L.Qx * dH[:, None, :]).reshape(T, 3 * h)
        out["dhh"] = dpart
    else:
        da = torch.zeros(T, 4 * h, dtype=E.dtype)
        dC = torch.zeros_like(dH)
        kernels.lstm_backward(WT, dH.numpy(), arr(L.K), arr(L.P), arr(L.f), dC.numpy(), da.numpy(),
                              last, cut, threads)
        out["da"] = out["dhh"] = da
        out["dC"] = dC
    return out


def _backward_layer_torch(L: _Layer, E: Tensor, last: int, cuts: set[int]) -> dict[str, Tensor]:
    """:func:`_backward_layer` as a torch loop: the reference for the compiled kernels and the
    fallback without numba."""
    T, h = E.shape
    dH = E.clone()
    rows = dH.unbind(0)
    WT = L.w_hh.T.contiguous()  # (h, G·h): dH_{t−1} += WT @ dpart_t (contiguous: ~15% faster gemv)
    out: dict[str, Tensor] = {"dH": dH}
    if L.cell.startswith("rnn"):
        da = torch.zeros_like(dH)
        das, D = da.unbind(0), L.D.unbind(0)
        for t in range(last, 0, -1):
            torch.mul(rows[t], D[t], out=das[t])
            if t not in cuts:
                rows[t - 1].addmv_(WT, das[t])
        if last >= 0:
            torch.mul(rows[0], D[0], out=das[0])
        out["da"] = da
        out["dhh"] = da
    elif L.cell == "gru":
        dpart = torch.zeros(T, 3, h, dtype=E.dtype)
        dps, Qh, z = dpart.unbind(0), L.Qh.unbind(0), L.z.unbind(0)
        flat = dpart.view(T, 3 * h).unbind(0)
        for t in range(last, 0, -1):
            torch.mul(Qh[t], rows[t], out=dps[t])
            if t not in cuts:
                rows[t - 1].addcmul_(rows[t], z[t]).addmv_(WT, flat[t])
        if last >= 0:
            torch.mul(Qh[0], rows[0], out=dps[0])
        out["da"] = (L.Qx * dH[:, None, :]).reshape(T, 3 * h)
        out["dhh"] = dpart.view(T, 3 * h)
    else:
        da = torch.zeros(T, 4, h, dtype=E.dtype)
        dC = torch.zeros_like(dH)
        dcs = dC.unbind(0)
        das = da.unbind(0)
        flat = da.view(T, 4 * h).unbind(0)
        P3, Po, K, f = L.P[:, :3].unbind(0), L.P[:, 3].unbind(0), L.K.unbind(0), L.f.unbind(0)
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
        out["da"] = da.view(T, 4 * h)
        out["dhh"] = out["da"]
        out["dC"] = dC
    return out


def _loss_steps(T: int, loss: str, step: int | None) -> tuple[int, ...]:
    if T < 2:
        raise GradientError("The text needs at least 2 characters: a loss compares the prediction "
                            "made at step t with the character at t+1.")
    if loss not in LOSSES:
        raise GradientError(f"Unknown loss {loss!r}; choose one of {LOSSES}.")
    if loss == "last":
        return (T - 2,)
    if loss == "step":
        if step is None or not isinstance(step, int) or not 0 <= step <= T - 2:
            raise GradientError(f"The loss step s must be a whole number in 0 … {T - 2} (the last "
                                f"step with a next character to predict), got {step!r}.")
        return (step,)
    return tuple(range(T - 1))


def _output_adjoint(model: CharRNN, tr: Trace, loss_steps: tuple[int, ...]) -> tuple[Tensor, Tensor, float]:
    """dO (T, |V|) = softmax(O_t) − onehot(chars[t+1]) at loss steps (0 elsewhere); E_top = dO @ W_hq.T
    as (T, h) (PyTorch: output.weight is (|V| × h)); and the loss value in nats."""
    probs = tr.probs
    T, V = probs.shape
    dO = torch.zeros_like(probs)
    idx = torch.tensor(loss_steps, dtype=torch.long)
    targets = tr.ids[idx + 1]
    dO[idx] = probs[idx]
    dO[idx, targets] -= 1
    E = dO @ model.output.weight.detach().to(probs.dtype)
    loss_value = float(-tr.log_probs[idx, targets].double().sum())
    return dO, E, loss_value


@dataclass
class _Backprop:
    """One hand-written backward pass: the (what-if) model and trace, the loss steps, each layer's
    terms and adjoints (see :func:`_backward_layer`), dO (T, |V|) and the loss in nats."""

    work: CharRNN
    trace: Trace
    loss_steps: tuple[int, ...]
    layers: list[_Layer]
    backs: list[dict]
    dO: Tensor
    loss_value: float


def _backprop(model: CharRNN, text: str | Trace, loss: str, step: int | None, whatif: WhatIf,
              dtype: torch.dtype | None) -> _Backprop:
    """Trace (on a copy if a knob changes the model), then backpropagate the loss from the top layer
    down: each layer's input adjoint is the external adjoint of the layer below."""
    work, tr = _prepare(model, text, whatif, dtype)
    loss_steps = _loss_steps(len(tr), loss, step)
    last = loss_steps[-1]
    cuts = _cuts(last, whatif.truncate)
    layers = [_layer_terms(work, tr, l) for l in range(work.config.num_layers)]
    dO, E, loss_value = _output_adjoint(work, tr, loss_steps)
    backs: list[dict] = [None] * len(layers)  # type: ignore[list-item]
    for l in range(len(layers) - 1, -1, -1):
        backs[l] = _backward_layer(layers[l], E, last, cuts)
        if l > 0:
            E = backs[l]["da"] @ layers[l].w_ih
    return _Backprop(work, tr, loss_steps, layers, backs, dO, loss_value)
