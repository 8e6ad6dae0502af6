"""The norm curve ‖∂L/∂H_t‖ (and ‖∂L/∂C_t‖), and the parameter gradients of the same backward pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..model import CharRNN
from ..trace import Trace
from .backward import _backprop
from .clip import ClipReport, _clip
from .fit import RateFit, _log10, fit_rate
from .nonfinite import NonFinite, _nonfinite, forward_nonfinite
from .terms import _Layer
from .whatif import NO_WHATIF, WhatIf
from ..names import act_name


@dataclass
class NormCurve:
    """‖∂L/∂H_t‖ (and ‖∂L/∂C_t‖) for the steps upstream of the loss.

    steps: (n,) long, t = 0 … loss_step (the steps the loss depends on; n = loss_step + 1).
    distance: (n,) long, loss_step − t (for the summed loss: distance from the last loss step).
    h_norms[l]: (n,) float64, ‖∂L/∂H_t‖ of layer l. c_norms[l]: same for C_t (LSTM; else None).
    grads_h[l] / grads_c[l]: (n, h) the adjoint vectors themselves, only with ``keep_grads``.
    loss_value: L in nats. loss_steps: the steps t whose ℓ_t are in L.
    fits: series name ("layer0.h", "layer0.c", …) → RateFit over distances ≥ 1.
    nonfinite / zeros: series name → NonFinite / count of exact zeros.
    forward: inf/nan in the forward states H_t, C_t (steps ≤ loss_step) — the usual cause.
    truncated_from: with truncation k (single loss), the distance from which gradients are cut (= k)
    in the top layer (None when the truncation acts on a lower layer only: nothing is cut to 0).
    clip: ClipReport when a clipping knob is on (the update sees ``clip.factor`` × every norm, of
    the what-if's layer when it names one).
    """

    loss: str
    loss_step: int
    loss_steps: tuple[int, ...]
    loss_value: float
    steps: Tensor
    distance: Tensor
    chars: list[str]
    h_norms: list[Tensor]
    c_norms: list[Tensor] | None
    fits: dict[str, RateFit]
    nonfinite: dict[str, NonFinite]
    zeros: dict[str, int]
    cell: str
    num_layers: int
    hidden_size: int
    whatif: WhatIf
    dtype: str
    truncated_from: int | None = None
    clip: ClipReport | None = None
    forward: NonFinite = field(default_factory=NonFinite)
    grads_h: list[Tensor] | None = None
    grads_c: list[Tensor] | None = None

    def series(self) -> dict[str, Tensor]:
        """Series name → (n,) norms: "layer0.h", ("layer0.c",) "layer1.h", …"""
        out = {}
        for l in range(self.num_layers):
            out[act_name(l, "h")] = self.h_norms[l]
            if self.c_norms is not None:
                out[act_name(l, "c")] = self.c_norms[l]
        return out

    @property
    def top(self) -> str:
        return act_name(self.num_layers - 1, "h")

    @property
    def any_nonfinite(self) -> bool:
        return any(nf.any for nf in self.nonfinite.values())


def _param_grads(model: CharRNN, layers: list[_Layer], backs: list[dict], dO: Tensor,
                 top_h: Tensor) -> dict[str, Tensor]:
    """∂L/∂θ for every parameter (PyTorch names) from the stored adjoints (batched matmuls)."""
    grads: dict[str, Tensor] = {}
    for l, (L, b) in enumerate(zip(layers, backs)):
        grads.update((f"layers.{l}.{name}", g) for name, g in L.param_grads(b).items())
    grads["output.weight"] = dO.T @ top_h
    grads["output.bias"] = dO.sum(0)
    return grads


def _cut_from(whatif: WhatIf, loss: str, num_layers: int) -> list[int | None]:
    """Per layer, the last distance that can receive gradient under truncation (None: no cut):
    k − 1 for a single loss when the truncation acts on that layer and on every layer above it
    (a layer below a layer that carries the gradient on receives it at every step)."""
    if not whatif.truncate or loss == "sum":
        return [None] * num_layers
    out: list[int | None] = [None] * num_layers
    for l in range(num_layers - 1, -1, -1):
        if not whatif.acts_on(l):
            break
        out[l] = whatif.truncate - 1
    return out


@torch.no_grad()
def norm_curve(model: CharRNN, text: str | Trace, *, loss: str = "last", step: int | None = None,
               whatif: WhatIf | None = None, dtype: torch.dtype | None = None,
               keep_grads: bool = False) -> NormCurve:
    """‖∂L/∂H_t‖ for every upstream step t and every layer (and ‖∂L/∂C_t‖ for the LSTM).

    model: never modified (what-ifs run on a copy). text: a string, or a Trace of it (reused when
    no what-if changes the model and ``dtype`` matches). loss: "last" (ℓ at step T−2, the last step
    with a next character), "step" (ℓ at ``step`` = s), or "sum" (Σ_t ℓ_t, t = 0 … T−2).
    dtype: compute in this dtype (e.g. torch.float64 to push float underflow to 1e−308).
    Cost: one trace plus one matrix–vector product per step and layer, O(T·L·G·h²).
    Raises GradientError for texts shorter than 2 characters or a bad step/knob.
    """
    whatif = whatif or NO_WHATIF
    bp = _backprop(model, text, loss, step, whatif, dtype)
    work, tr, loss_steps, layers, backs, dO = bp.work, bp.trace, bp.loss_steps, bp.layers, bp.backs, bp.dO
    last, loss_value = loss_steps[-1], bp.loss_value
    n = last + 1
    steps = torch.arange(n)
    distance = last - steps
    h_norms = [torch.linalg.vector_norm(b["dH"][:n], dim=1, dtype=torch.float64) for b in backs]
    has_c = work.has_cell_state
    c_norms = ([torch.linalg.vector_norm(b["dC"][:n], dim=1, dtype=torch.float64) for b in backs]
               if has_c else None)
    fits, nonfin, zeros = {}, {}, {}
    series = {}
    for l in range(len(layers)):
        series[act_name(l, "h")] = h_norms[l]
        if c_norms is not None:
            series[act_name(l, "c")] = c_norms[l]
    cut_from = _cut_from(whatif, loss, len(layers))
    for name, s in series.items():
        fits[name] = fit_rate(distance, _log10(s), 1, cut_from[int(name[5:name.index(".")])])
        nonfin[name] = _nonfinite(s, steps)
        zeros[name] = int((s == 0).sum())
    clip = None
    if whatif.clip_norm is not None or whatif.clip_value is not None:
        grads = _param_grads(work, layers, backs, dO, tr[act_name(len(layers) - 1, "h")])
        if whatif.layer is not None:             # only that layer's parameters are clipped
            grads = {k: v for k, v in grads.items() if k.startswith(f"layers.{whatif.layer}.")}
        clip = _clip(grads, whatif.clip_norm, whatif.clip_value, whatif.layer)
    cfg = work.config
    return NormCurve(
        loss=loss, loss_step=last, loss_steps=loss_steps, loss_value=loss_value, steps=steps,
        distance=distance, chars=list(tr.chars), h_norms=h_norms, c_norms=c_norms, fits=fits,
        nonfinite=nonfin, zeros=zeros, cell=cfg.cell, num_layers=cfg.num_layers,
        hidden_size=cfg.hidden_size, whatif=whatif, dtype=str(tr["layer0.h"].dtype).replace("torch.", ""),
        truncated_from=cut_from[-1] + 1 if cut_from[-1] is not None else None, clip=clip,
        forward=forward_nonfinite(tr, last),
        grads_h=[b["dH"][:n].clone() for b in backs] if keep_grads else None,
        grads_c=[b["dC"][:n].clone() for b in backs] if (keep_grads and has_c) else None)


@torch.no_grad()
def parameter_gradients(model: CharRNN, text: str | Trace, *, loss: str = "last",
                        step: int | None = None, whatif: WhatIf | None = None,
                        dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """∂L/∂θ for every parameter (PyTorch names, PyTorch shapes), unclipped, from the same hand-written
    backward pass as :func:`norm_curve` (truncation applies). Mainly for checks and clipping."""
    bp = _backprop(model, text, loss, step, whatif or NO_WHATIF, dtype)
    return _param_grads(bp.work, bp.layers, bp.backs, bp.dO, bp.trace[act_name(len(bp.layers) - 1, "h")])
