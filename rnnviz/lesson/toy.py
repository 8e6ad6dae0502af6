"""(a) The seed's toy network, step by step with shapes: how ReLU can output all zeros (dead units,
zero gradient) and how tanh differs (:func:`run_toy`); see :mod:`rnnviz.lesson`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

TOY_SHAPES = {"X": (3, 1), "W_xh": (1, 2), "W_hh": (2, 2), "b_h": (1, 2), "W_hq": (2, 3), "b_q": (1, 3)}
ACTIVATIONS = ("relu", "tanh")

#: Example weights. "dead": W_xh < 0 while every X_t > 0, so every pre-activation of the hidden
#: layer is negative and ReLU outputs H = 0 at every step; then O_t = ReLU(b_q) = 0 as well.
#: "alive": the same X with mixed-sign weights, so some units fire.
TOY_PRESETS: dict[str, dict[str, list[list[float]]]] = {
    "dead": {
        "X": [[1.0], [2.0], [3.0]],
        "W_xh": [[-1.0, -0.5]],
        "W_hh": [[0.5, -0.3], [0.2, 0.4]],
        "b_h": [[0.0, 0.0]],
        "W_hq": [[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]],
        "b_q": [[0.0, 0.0, 0.0]],
    },
    "alive": {
        "X": [[1.0], [2.0], [3.0]],
        "W_xh": [[0.8, -0.5]],
        "W_hh": [[0.5, -0.3], [0.2, 0.4]],
        "b_h": [[0.0, 0.1]],
        "W_hq": [[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]],
        "b_q": [[0.0, 0.0, 0.0]],
    },
}


class ToyInputError(ValueError):
    """The toy network's values are unusable (wrong shape, not finite); the message says why."""


def toy_params(preset: str = "dead") -> dict[str, Tensor]:
    """A fresh copy of one of :data:`TOY_PRESETS` as float64 tensors of the documented shapes."""
    if preset not in TOY_PRESETS:
        raise ToyInputError(f"unknown preset {preset!r}; expected one of {sorted(TOY_PRESETS)}")
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in TOY_PRESETS[preset].items()}


def _check_toy(params: dict) -> dict[str, Tensor]:
    out = {}
    for name, shape in TOY_SHAPES.items():
        if name not in params:
            raise ToyInputError(f"{name} is missing")
        try:
            raw = params[name]
            value = (raw.detach().to(torch.float64).clone() if isinstance(raw, Tensor)
                     else torch.from_numpy(np.array(raw, dtype=np.float64)))
        except (TypeError, ValueError):
            raise ToyInputError(f"{name} must be a table of numbers") from None
        if value.shape == shape[1:] and shape[0] == 1:   # accept a bias given as a vector
            value = value.reshape(shape)
        if tuple(value.shape) != shape:
            raise ToyInputError(f"{name} must have shape {shape[0]}×{shape[1]}, got "
                                f"{'×'.join(map(str, value.shape)) or 'a scalar'}")
        if not torch.isfinite(value).all():
            raise ToyInputError(f"{name} has an empty, NaN or infinite entry: type a number in every cell")
        out[name] = value
    return out


def _phi(name: str):
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ToyInputError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


@dataclass
class ToyStep:
    """One time step of the toy network (all row vectors, as in the book)."""

    t: int                 #: 1-based, as in the book
    X_t: Tensor            #: (1, 1)
    XW: Tensor             #: X_t W_xh                (1, 2)
    HW: Tensor             #: H_{t-1} W_hh            (1, 2)
    A_t: Tensor            #: X_t W_xh + H_{t-1} W_hh + b_h   (1, 2): the hidden pre-activation
    H_t: Tensor            #: φ(A_t)                  (1, 2)
    Z_t: Tensor            #: H_t W_hq + b_q          (1, 3): the output pre-activation
    O_t: Tensor            #: φ(Z_t)                  (1, 3)


@dataclass
class ToyResult:
    activation: str
    params: dict[str, Tensor]
    steps: list[ToyStep]
    A: Tensor              #: (3, 2) hidden pre-activations, one row per step
    H: Tensor              #: (3, 2)
    Z: Tensor              #: (3, 3) output pre-activations
    O: Tensor              #: (3, 3)
    H_all_zero: bool
    O_all_zero: bool
    dead_units: list[int]  #: hidden units (0-based) that are 0 at every step (ReLU: A ≤ 0 always)
    grad_norms: dict[str, float]  #: ‖∂L/∂W‖ for L = Σ_t cross-entropy(O_t, target_t), target = t
    explanation: list[str] = field(default_factory=list)

    def shapes(self) -> dict[str, str]:
        """Every named quantity with its shape, e.g. ``{"W_xh": "1×2", ...}``."""
        named = {**self.params, "A": self.A, "H": self.H, "Z": self.Z, "O": self.O}
        return {k: "×".join(map(str, v.shape)) for k, v in named.items()}


def run_toy(params: dict | None = None, activation: str = "relu") -> ToyResult:
    """Run the toy network step by step: H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h), O_t = φ(H_t W_hq + b_q).

    params: tensors/nested lists named as :data:`TOY_SHAPES` (default: the "dead" preset).
    activation: "relu" or "tanh", applied to both layers as in the seed. H_0 = 0.
    Also measures the gradient of a cross-entropy loss (target class t at step t) with respect to
    every weight: with all-zero ReLU outputs it is exactly 0 (nothing can revive the units).
    Raises ToyInputError for bad shapes or non-finite values.
    """
    phi = _phi(activation)
    p = _check_toy(toy_params("dead") if params is None else params)
    leaf = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    X, W_xh, W_hh, b_h, W_hq, b_q = (leaf[k] for k in ("X", "W_xh", "W_hh", "b_h", "W_hq", "b_q"))
    H_prev = torch.zeros(1, 2, dtype=torch.float64)
    steps, As, Hs, Zs, Os = [], [], [], [], []
    for t in range(3):
        X_t = X[t:t + 1]                       # (1, 1)
        XW = X_t @ W_xh                        # (1, 1)(1, 2) → (1, 2)
        HW = H_prev @ W_hh                     # (1, 2)(2, 2) → (1, 2)
        A_t = XW + HW + b_h
        H_t = phi(A_t)
        Z_t = H_t @ W_hq + b_q                 # (1, 2)(2, 3) → (1, 3)
        O_t = phi(Z_t)
        steps.append(ToyStep(t + 1, *(v.detach() for v in (X_t, XW, HW, A_t, H_t, Z_t, O_t))))
        As.append(A_t), Hs.append(H_t), Zs.append(Z_t), Os.append(O_t)
        H_prev = H_t
    A, H, Z, O = (torch.cat(v) for v in (As, Hs, Zs, Os))
    loss = torch.nn.functional.cross_entropy(O, torch.arange(3), reduction="sum")
    grads = torch.autograd.grad(loss, [leaf[k] for k in TOY_SHAPES if k != "X"])
    grad_norms = {k: float(g.norm()) for k, g in zip([k for k in TOY_SHAPES if k != "X"], grads)}
    H, O, A, Z = H.detach(), O.detach(), A.detach(), Z.detach()
    dead = [j for j in range(2) if bool((H[:, j] == 0).all())]
    res = ToyResult(activation, p, steps, A, H, Z, O, bool((H == 0).all()), bool((O == 0).all()),
                    dead, grad_norms)
    res.explanation = _explain_toy(res)
    return res


def _explain_toy(r: ToyResult) -> list[str]:
    lines = []
    if r.activation == "relu":
        if r.H_all_zero:
            lines.append("Every hidden pre-activation A_t = X_t W_xh + H_{t-1} W_hh + b_h is ≤ 0, and "
                         "ReLU(a) = max(0, a) maps all of them to 0: H is all zeros.")
            lines.append("With H_{t-1} = 0 the recurrent term H_{t-1} W_hh contributes nothing, so the "
                         "state cannot carry anything forward either.")
        elif r.dead_units:
            lines.append(f"Hidden unit(s) {', '.join(str(j + 1) for j in r.dead_units)} have a "
                         "pre-activation ≤ 0 at every step, so ReLU outputs 0 there: a dead unit.")
        if r.O_all_zero:
            lines.append("The output layer sees H_t W_hq + b_q; every entry is ≤ 0 "
                         + ("(with H = 0 it is just b_q) " if r.H_all_zero else "")
                         + "so ReLU outputs O = 0: softmax(O_t) is uniform, the network says nothing.")
        if r.H_all_zero or r.O_all_zero or r.dead_units:
            total = sum(r.grad_norms.values())
            lines.append("ReLU's slope is 0 for negative inputs, so the gradient through a dead unit "
                         f"is 0 as well (measured: Σ‖∂L/∂W‖ = {total:.3g}"
                         + (" for the weights feeding the dead layer" if total else "")
                         + "): gradient descent cannot bring it back. Fixes: positive biases, "
                         "a different initialisation, leaky ReLU, or tanh.")
        if not lines:
            lines.append("Some pre-activations are positive, so ReLU passes them on: H is not all zero.")
    else:
        lines.append("tanh(a) is 0 only at a = 0 and keeps the sign of negative pre-activations, so "
                     "the same weights give non-zero H_t and O_t, and a non-zero gradient.")
        if r.H_all_zero:
            lines.append("Here every pre-activation is exactly 0, so even tanh outputs 0.")
    return lines
