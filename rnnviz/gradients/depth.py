"""Gradient flow over layers × time: ‖∂L/∂H_t^(l)‖ for every layer l and step t as one array.

A gradient reaching H_t^(l) has travelled two ways from the loss: back in *time* along layer l's
recurrence (one Jacobian ∂H_{t+1}/∂H_t per step) and down in *depth* through the layers above
(one Jacobian ∂H_t^(l+1)/∂H_t^(l) per layer). :class:`DepthFlow` arranges the norm curve
(:func:`rnnviz.gradients.norm_curve`, same numbers, same loss choices and what-ifs) as a layer ×
distance-back array and summarises each direction by a factor:

* ``time_factors[l]``: the fitted per-step factor of layer l (:func:`fit_rate`, distances ≥ 1, the
  same fit as the norm curve's "layer{l}.h");
* ``depth_factors[l]`` (l < L − 1): ‖∂L/∂H^(l)‖ / ‖∂L/∂H^(l+1)‖ at distance 0, the loss step,
  where the gradient has come *only* down through the layers (no step back in time yet), so the
  ratio is one layer's Jacobian alone (nan when either norm is 0 or not finite). At larger
  distances the ratio also holds the layers' different time factors, so it is not a depth measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import CharRNN
from ..names import act_name
from ..trace import Trace
from .fit import RateFit
from .norm_curve import NormCurve, norm_curve
from .whatif import WhatIf


@dataclass
class DepthFlow:
    """Layer × distance-back gradient norms of one loss.

    norms: (L, n) float64, ``norms[l, d]`` = ‖∂L/∂H_t^(l)‖ at t = loss_step − d (d = 0 … loss_step).
    c_norms: the same for C_t (LSTM), else None. chars: the text's characters (``chars[t]``).
    time_factors / time_fits: per layer, the fitted per-step factor (RateFit). depth_factors:
    (L − 1,) per layer boundary, see the module docstring. loss / loss_step / loss_value: as in
    :class:`NormCurve`; cell, num_layers, hidden_size describe the model.
    """

    norms: Tensor
    c_norms: Tensor | None
    chars: list[str]
    time_fits: list[RateFit]
    depth_factors: Tensor
    loss: str
    loss_step: int
    loss_value: float
    cell: str
    num_layers: int
    hidden_size: int

    @property
    def time_factors(self) -> list[float]:
        return [f.factor for f in self.time_fits]

    @property
    def distance(self) -> Tensor:
        """(n,) distances back from the loss step, 0 … loss_step."""
        return torch.arange(self.norms.shape[1])

    def char_at(self, d: int) -> str:
        """The character read at distance ``d`` back from the loss step."""
        return self.chars[self.loss_step - d]


def _depth_factor(lower: Tensor, upper: Tensor) -> float:
    """lower[0] / upper[0] (distance 0) when both are finite and non-zero, else nan."""
    a, b = float(lower[0]), float(upper[0])
    return a / b if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0 else math.nan


def depth_flow_from_curve(curve: NormCurve) -> DepthFlow:
    """The :class:`DepthFlow` of an already computed norm curve (no new computation)."""
    norms = torch.stack([h.flip(0) for h in curve.h_norms])            # time order → distance order
    c_norms = torch.stack([c.flip(0) for c in curve.c_norms]) if curve.c_norms is not None else None
    fits = [curve.fits[act_name(l, "h")] for l in range(curve.num_layers)]
    depth = torch.tensor([_depth_factor(norms[l], norms[l + 1]) for l in range(curve.num_layers - 1)],
                         dtype=torch.float64)
    return DepthFlow(norms=norms, c_norms=c_norms, chars=list(curve.chars), time_fits=fits,
                     depth_factors=depth, loss=curve.loss, loss_step=curve.loss_step,
                     loss_value=curve.loss_value, cell=curve.cell, num_layers=curve.num_layers,
                     hidden_size=curve.hidden_size)


def depth_flow(model: CharRNN, text: str | Trace, *, loss: str = "last", step: int | None = None,
               whatif: WhatIf | None = None, dtype: torch.dtype | None = None) -> DepthFlow:
    """‖∂L/∂H_t^(l)‖ for every layer and step as a :class:`DepthFlow` (arguments, cost and errors
    as :func:`norm_curve`, whose result this rearranges)."""
    return depth_flow_from_curve(norm_curve(model, text, loss=loss, step=step, whatif=whatif, dtype=dtype))


def _x(f: float) -> str:
    return f"× {f:.3g}" if math.isfinite(f) else "an unknown factor"


def depth_reading(flow: DepthFlow, horizon: int = 20) -> str:
    """Plain-language sentences comparing depth and time for ``flow`` (no markup): the fitted
    per-step factor of the top and bottom layers, the mean per-layer factor, and what ``horizon``
    steps back in time do compared with going down through every layer."""
    top, bottom = flow.time_factors[-1], flow.time_factors[0]
    L = flow.num_layers
    text = ("Every step back in time multiplies the gradient by one more Jacobian of the recurrence "
            "(∂H_t/∂H_{t−1}); every layer down, at the same step, by one Jacobian between layers "
            f"(∂H_t^(l+1)/∂H_t^(l)). Here one step back changes ‖∂L/∂H‖ by {_x(top)} in the top "
            f"layer")
    text += f" and {_x(bottom)} in layer 0." if L > 1 else "."
    if L < 2:
        return text
    finite = flow.depth_factors[torch.isfinite(flow.depth_factors) & (flow.depth_factors > 0)]
    if finite.numel() == 0:
        return text
    all_layers = float(torch.prod(finite))
    per_layer = all_layers ** (1 / finite.numel())
    text += (f" At the loss step, where the gradient has only come down through the layers, one "
             f"layer down changes it by {_x(per_layer)} on average.")
    if math.isfinite(top) and top > 0:
        in_time = top ** horizon
        text += (f" But a network has only {L - 1} layer boundar{'y' if L == 2 else 'ies'} "
                 f"({_x(all_layers)} through all of them), while a text has as many steps as "
                 f"characters: {horizon} steps back already give {_x(in_time)}.")
        if abs(math.log(max(all_layers, 1e-300))) > abs(math.log(max(in_time, 1e-300))):
            text += f" Here depth changes the gradient more than {horizon} steps of time do."
        else:
            text += " So over long texts, time, not depth, decides whether a gradient vanishes or explodes."
    return text
