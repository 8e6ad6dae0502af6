"""The layers of one model side by side (the Compare view's "layers of one model"): every layer's
H_t (and the LSTM's C_t) on the same text, a few statistics per layer, and one gradient-norm curve
per layer. Pure data, no Streamlit, no Plotly.

Statistics of one layer's states X (T × h, all steps of the text, float64):

* ``mean |value|``: mean over steps and units of |X_t,j|;
* ``std``: standard deviation of all T·h entries;
* ``saturated``: share of entries with |X_t,j| > :data:`SATURATION` (tanh and the LSTM's H_t live
  in (−1, 1): near ±1 a unit no longer passes gradient);
* ``lag-1 autocorrelation``: per unit, the correlation of X_t,j with X_{t−1},j over the text, averaged
  over units with a non-zero variance: near 1 a layer changes slowly (a long time scale);
* ``effective dimensions``: the participation ratio (Σλ)² / Σλ² of the eigenvalues λ of the
  units' covariance over the text: how many directions the layer's state really uses.

Gradient curves: ‖∂ℓ/∂H_t^(l)‖ of every layer for the loss ℓ of the last prediction, from one
:func:`rnnviz.gradients.norm_curve` (float64) on the last ``max_chars`` characters of the text,
with each layer's fitted per-step factor (and, for the LSTM, that of ‖∂ℓ/∂C_t^(l)‖).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .compare import GRAD_MAX_CHARS  # the gradient curves use at most the last this-many characters
from .model import CharRNN
from .names import act_name
from .trace import Trace
from .trace import trace as run_trace

#: |value| above which a state entry counts as saturated.
SATURATION = 0.9
_SYMBOL = {"h": "H_t", "c": "C_t"}


@dataclass
class LayerCurve:
    """‖∂ℓ/∂H_t^(l)‖ of one layer against distance back from the loss step."""

    layer: int
    distance: np.ndarray       #: (n,) steps back from the loss step
    norms: np.ndarray          #: (n,) float64
    factor: float              #: fitted per-step factor (nan when not fittable)
    steps_to_1pct: float       #: steps after which the fitted curve has shrunk (or grown) 100×
    zeros: int                 #: exact zeros (underflow) in the curve
    c_factor: float = math.nan          #: the LSTM's ‖∂ℓ/∂C_t‖: its fitted per-step factor
    c_steps_to_1pct: float = math.nan   #: … and steps to shrink 100×


@dataclass
class LayerComparison:
    """One model's layers on one text: ``states`` maps "layer{l}.h" (and "layer{l}.c") to (T, h)
    float32 arrays of the text the model reads (``chars``); ``table`` one row per layer and state."""

    name: str
    cell: str
    num_layers: int
    hidden_size: int
    chars: list[str]
    states: dict[str, np.ndarray]
    table: pd.DataFrame

    def kinds(self) -> list[str]:
        """The states every layer has: ["h"] or ["h", "c"]."""
        return [k for k in ("h", "c") if act_name(0, k) in self.states]


def layer_stats(X: np.ndarray) -> dict[str, float]:
    """The statistics of one layer's states X (T, h) (definitions: the module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    out = {"mean |value|": float(np.abs(X).mean()), "std": float(X.std()),
           f"saturated (|value| > {SATURATION:g})": float((np.abs(X) > SATURATION).mean())}
    out["lag-1 autocorrelation"] = _lag1(X)
    out["effective dimensions"] = _participation_ratio(X)
    return out


def _lag1(X: np.ndarray) -> float:
    if X.shape[0] < 3:
        return math.nan
    a, b = X[1:] - X[1:].mean(0), X[:-1] - X[:-1].mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    ok = den > 0
    return float(((a * b).sum(0)[ok] / den[ok]).mean()) if ok.any() else math.nan


def _participation_ratio(X: np.ndarray) -> float:
    if X.shape[0] < 2:
        return math.nan
    lam = np.clip(np.linalg.eigvalsh(np.cov(X, rowvar=False).reshape(X.shape[1], X.shape[1])), 0, None)
    s2 = float((lam ** 2).sum())
    return float(lam.sum() ** 2 / s2) if s2 > 0 else math.nan


def compare_layers(model: CharRNN, text: str | Trace, name: str = "") -> LayerComparison:
    """Every layer of ``model`` on ``text`` (a string, or its trace through ``model``)."""
    tr = text if isinstance(text, Trace) else run_trace(model, text)
    cfg = model.config
    states, rows = {}, []
    for layer in range(cfg.num_layers):
        for kind in ("h", "c"):
            key = act_name(layer, kind)
            if key not in tr:
                continue
            states[key] = tr[key].float().numpy().copy()
            rows.append({"layer": f"L{layer}", "state": _SYMBOL[kind], **layer_stats(states[key])})
    return LayerComparison(name or getattr(model, "name", "") or cfg.cell, cfg.cell, cfg.num_layers,
                           cfg.hidden_size, list(tr.chars), states, pd.DataFrame(rows))


def layer_gradient_curves(model: CharRNN, text: str, max_chars: int = GRAD_MAX_CHARS) -> list[LayerCurve]:
    """One ‖∂ℓ/∂H_t^(l)‖ curve per layer for the loss of the last prediction on the last
    ``max_chars`` characters of ``text`` (the text the model reads). Raises GradientError (a
    ValueError) for a text under 2 characters."""
    from . import gradients as G  # noqa: PLC0415 — as rnnviz.compare: imported when first used

    curve = G.norm_curve(model, text[-max_chars:], loss="last", dtype=torch.float64)
    out = []
    for layer in range(curve.num_layers):
        key = act_name(layer, "h")
        h, c = _fitted(curve.fits.get(key)), _fitted(curve.fits.get(act_name(layer, "c")))
        out.append(LayerCurve(layer, curve.distance.numpy(), curve.h_norms[layer].numpy().copy(), *h,
                              int(curve.zeros.get(key, 0)), *c))
    return out


def _fitted(fit) -> tuple[float, float]:
    """(per-step factor, steps to shrink 100×) of a RateFit, nan for none."""
    return (float(fit.factor), float(fit.steps_to_shrink(0.01))) if fit else (math.nan, math.nan)
