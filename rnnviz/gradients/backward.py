"""Backpropagation through time for one adjoint, layer by layer from the output down; each layer's
recurrence is its cell's (:meth:`rnnviz.cells.LayerJacobian.backward`: compiled kernel or torch loop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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
    terms and adjoints (see :meth:`rnnviz.cells.LayerJacobian.backward`), dO (T, |V|) and the loss in nats."""

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
        backs[l] = layers[l].backward(E, last, cuts if whatif.acts_on(l) else set())
        if l > 0:
            E = backs[l]["da"] @ layers[l].w_ih
    return _Backprop(work, tr, loss_steps, layers, backs, dO, loss_value)
