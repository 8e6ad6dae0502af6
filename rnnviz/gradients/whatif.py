"""What-ifs: counterfactual knobs, always applied to a copy of the model."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch

from ..model import CharRNN, empty_model
from ..trace import TextError, Trace, trace
from .errors import GradientError


@dataclass(frozen=True)
class WhatIf:
    """Counterfactual knobs. Every one is applied to a copy; the given model is never modified.

    whh_scale: multiply every layer's hidden-to-hidden weights by this factor (for GRU/LSTM all gate
        blocks W_h*), e.g. 1.2 to push the spectral radius of W_hh above 1.
    activation: ``"tanh"`` or ``"relu"`` — swap φ of a vanilla RNN (same weights). Refused for
        GRU/LSTM, whose gates fix their nonlinearities.
    truncate: truncated BPTT with window k (d2l §9.7.1.2): the state is detached every k steps,
        counted back from the loss step (for the summed loss: from the last loss step). With a
        single loss, only the k steps t = s−k+1 … s receive gradient. In the gradient map each row
        (one loss ℓ_t) is truncated k steps back from its own t.
    clip_norm: θ of d2l's global-norm clipping g ← min(1, θ/‖g‖)·g over *all* parameter gradients.
        It rescales every parameter gradient by one factor, so the update sees every ∂L/∂H_t scaled
        by that same factor: the curve keeps its shape (clipping tames explosions, it cannot revive
        vanished gradients). Reported in :class:`ClipReport`.
    clip_value: c of element-wise clipping (min-char-rnn: ``np.clip(dparam, -c, c)``) of every
        parameter gradient entry. Reported in :class:`ClipReport` (fraction clipped, norms).
    Clipping acts on parameter gradients of the norm curve's loss only; the Jacobian chain and the
    gradient map describe the dynamics and ignore clipping (the chain ignores truncation too).
    layer: the layer the W_hh scale, the truncation and the clipping act on (None: every layer).
        Scaling multiplies only that layer's W_hh; truncation detaches only that layer's state (the
        layers above still carry the gradient back in time and hand it down at every step);
        clipping clips only that layer's parameter gradients. The activation swap always acts on
        every layer (the layers of a model share one cell).
    """

    whh_scale: float = 1.0
    activation: str | None = None
    truncate: int | None = None
    clip_norm: float | None = None
    clip_value: float | None = None
    layer: int | None = None

    def __post_init__(self):
        if not (isinstance(self.whh_scale, (int, float)) and math.isfinite(self.whh_scale)):
            raise GradientError(f"The W_hh scale must be a finite number, got {self.whh_scale!r}.")
        if self.activation not in (None, "tanh", "relu"):
            raise GradientError(f"activation must be 'tanh' or 'relu', got {self.activation!r}.")
        if self.truncate is not None and (not isinstance(self.truncate, int) or self.truncate < 1):
            raise GradientError(f"The truncation window k must be a whole number ≥ 1, got {self.truncate!r}.")
        for name, v in (("clip_norm", self.clip_norm), ("clip_value", self.clip_value)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise GradientError(f"{name} must be a positive number, got {v!r}.")
        if self.layer is not None and (not isinstance(self.layer, int) or isinstance(self.layer, bool)
                                       or self.layer < 0):
            raise GradientError(f"The what-if layer must be a layer index ≥ 0 or None, got {self.layer!r}.")

    def acts_on(self, layer: int) -> bool:
        """Whether the per-layer knobs (W_hh scale, truncation, clipping) act on ``layer``."""
        return self.layer is None or self.layer == layer

    def check_layers(self, num_layers: int) -> None:
        """Raise GradientError when the knobs' layer is not one of a model's ``num_layers``."""
        if self.layer is not None and self.layer >= num_layers:
            raise GradientError(f"The what-if layer {self.layer} does not exist: the model has "
                                f"{num_layers} layer{'s' if num_layers != 1 else ''} (0 … {num_layers - 1}).")

    @property
    def changes_model(self) -> bool:
        return self.whh_scale != 1.0 or self.activation is not None

    def describe(self) -> list[str]:
        """Plain-language list of the active knobs (empty when none)."""
        where = "" if self.layer is None else f" (layer {self.layer} only)"
        out = []
        if self.whh_scale != 1.0:
            out.append(f"W_hh × {self.whh_scale:g}{where}")
        if self.activation:
            out.append(f"φ = {self.activation}{' (every layer)' if where else ''}")
        if self.truncate:
            out.append(f"BPTT truncated to k = {self.truncate}{where}")
        if self.clip_norm:
            out.append(f"global-norm clipping θ = {self.clip_norm:g}{where}")
        if self.clip_value:
            out.append(f"element-wise clipping ±{self.clip_value:g}{where}")
        return out


NO_WHATIF = WhatIf()


def apply_whatif(model: CharRNN, whatif: WhatIf | None = None, dtype: torch.dtype | None = None) -> CharRNN:
    """The model a computation should use: ``model`` itself when nothing changes, else a new copy.

    The copy is a fresh :class:`CharRNN` loaded from cloned tensors (so even shared storage is never
    written to), in eval mode, with ``requires_grad`` off, in ``dtype`` if given.
    """
    whatif = whatif or NO_WHATIF
    whatif.check_layers(model.config.num_layers)
    cur_dtype = model.output.weight.dtype
    if not whatif.changes_model and (dtype is None or dtype == cur_dtype):
        return model
    cfg = model.config
    if whatif.activation is not None:
        if not model.spec.is_vanilla:
            raise GradientError(f"The activation swap is for the vanilla RNN; a {model.spec.title} "
                                "keeps its σ and tanh gates. Reset the activation knob.")
        cfg = replace(cfg, cell=f"rnn_{whatif.activation}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if whatif.whh_scale != 1.0:
        for key in state:
            if key.startswith("layers.") and ".weight_hh_l0" in key and whatif.acts_on(int(key.split(".")[1])):
                state[key] = state[key] * whatif.whh_scale
    new = empty_model(cfg)                 # every weight is loaded next: no random init
    new.load_state_dict(state)
    if dtype is not None:
        new = new.to(dtype)
    new.eval().requires_grad_(False)
    for attr in ("name", "provenance"):
        if hasattr(model, attr):
            setattr(new, attr, copy.deepcopy(getattr(model, attr)))
    return new


def _prepare(model: CharRNN, text: str | Trace, whatif: WhatIf | None,
             dtype: torch.dtype | None) -> tuple[CharRNN, Trace]:
    work = apply_whatif(model, whatif, dtype)
    if isinstance(text, Trace):
        if work is model and text.cell == model.config.cell and text.tokens == model.config.tokens:
            return work, text
        text = text.original_text or text.text
    try:
        return work, trace(work, text)
    except TextError as err:
        raise GradientError(str(err)) from None
