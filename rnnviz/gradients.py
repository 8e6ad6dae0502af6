"""Gradient dynamics across long backprop chains (d2l §9.7 "Backpropagation Through Time").

For a model and a text of T characters this module measures, without Streamlit:

1. **Norm curve** (:func:`norm_curve`): ‖∂L/∂H_t‖ for every step t and layer — the *total*
   derivative, i.e. through the recurrence H_{t+1} = φ(X_{t+1} W_xh + H_t W_hh + b_h), through the
   layer above and through the output — for the loss L = ℓ_s at the last step, at a chosen step s,
   or the sum Σ_t ℓ_t, where ℓ_t = −log P(chars[t+1] | chars[:t+1]) is the cross-entropy of the
   prediction made at step t. For the LSTM also ‖∂L/∂C_t‖.
2. **Jacobian chain** (:func:`jacobian_chain`): ‖∂H_T/∂H_t‖ (spectral and Frobenius) for all t < T
   within one layer, with a fitted per-step factor.
3. **Gradient map** (:func:`gradient_map`): G[t, k] = ‖∂ℓ_t/∂H_k‖ for every loss step t and every
   k ≤ t, with a documented size cap (rows are downsampled above it, see ``MAP_MAX_MACS``).
4. **Spectrum** (:func:`whh_spectrum`): eigenvalues, spectral radius and singular values of W_hh
   (for gated cells: of every hidden-to-hidden block, W_hr, W_hz, W_hh / W_hi, W_hf, W_ho, W_hc).
5. **What-ifs** (:class:`WhatIf`), always applied to a *copy* of the model: scale W_hh, swap tanh/ReLU
   (vanilla RNN), truncated BPTT, global-norm clipping θ (d2l) and element-wise clipping ±c.

How it is computed: the forward pass is one :func:`rnnviz.trace` (fused PyTorch layers, gates
recovered in batch). The backward pass is a hand-written reverse-mode recurrence over those stored
gates — backpropagation through time with one matrix–vector product per step (the norm curve), or
one matrix–matrix product per step when many adjoints travel together (the gradient map carries one
row per loss, the Jacobian chain one row per output unit). For the matrix versions the per-step
Jacobian ∂H_t/∂H_{t-1} = diag(·) W + … is assembled once per step (O(h²)) so each step costs one
(rows × h) @ (h × h) product whatever the cell.

Conventions: row vectors as in d2l (H_t is 1 × h); steps are 0-based (H_t is the state after
reading ``chars[t]``); the state before the text is zero. For the LSTM the state is (H_t, C_t) and a
derivative "with respect to H_t" holds C_t fixed (and vice versa), so ∂L/∂C_t is the total
derivative through H_t = O_t ⊙ tanh(C_t) and C_{t+1} = F_{t+1} ⊙ C_t + ….

Non-finite numbers (an exploding forward pass overflowing to inf, then inf − inf = nan) are never
hidden: every result carries :class:`NonFinite` counts per series, and plots mark them. Exact zeros
(float underflow of a vanishing gradient, dead ReLUs, truncation) are counted too.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from . import kernels
from .model import CharRNN
from .trace import TextError, Trace, trace

LOSSES = ("last", "step", "sum")

#: Gradient map cost cap: estimated multiply–adds of the batched backward pass. Above it the loss
#: rows are downsampled (every r-th loss step) until the estimate fits. ~2·10¹⁰ is ≈1–2 s on 2 cores.
MAP_MAX_MACS = 2.0e10
#: At most this many loss rows in a gradient map (memory: rows × T × layers float32 numbers).
MAP_MAX_ROWS = 1000
#: A gradient map needs one column per step; longer texts are refused.
MAP_MAX_STEPS = 20_000
#: The exact spectral norm (SVD per step) is used automatically up to this hidden size.
EXACT_SVD_MAX_H = 64
#: Steps per batched spectral-norm chunk of the Jacobian chain (each chunk warm-starts the next).
CHAIN_CHUNK_STEPS = 32


class GradientError(ValueError):
    """A gradient computation cannot run as asked; ``str(err)`` says why and what to change."""


# =============================================================================== what-ifs
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
    """

    whh_scale: float = 1.0
    activation: str | None = None
    truncate: int | None = None
    clip_norm: float | None = None
    clip_value: float | None = None

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

    @property
    def changes_model(self) -> bool:
        return self.whh_scale != 1.0 or self.activation is not None

    def describe(self) -> list[str]:
        """Plain-language list of the active knobs (empty when none)."""
        out = []
        if self.whh_scale != 1.0:
            out.append(f"W_hh × {self.whh_scale:g}")
        if self.activation:
            out.append(f"φ = {self.activation}")
        if self.truncate:
            out.append(f"BPTT truncated to k = {self.truncate}")
        if self.clip_norm:
            out.append(f"global-norm clipping θ = {self.clip_norm:g}")
        if self.clip_value:
            out.append(f"element-wise clipping ±{self.clip_value:g}")
        return out


NO_WHATIF = WhatIf()


def apply_whatif(model: CharRNN, whatif: WhatIf | None = None, dtype: torch.dtype | None = None) -> CharRNN:
    """The model a computation should use: ``model`` itself when nothing changes, else a new copy.

    The copy is a fresh :class:`CharRNN` loaded from cloned tensors (so even shared storage is never
    written to), in eval mode, with ``requires_grad`` off, in ``dtype`` if given.
    """
    whatif = whatif or NO_WHATIF
    cur_dtype = model.output.weight.dtype
    if not whatif.changes_model and (dtype is None or dtype == cur_dtype):
        return model
    cfg = model.config
    if whatif.activation is not None:
        if not cfg.cell.startswith("rnn"):
            raise GradientError(f"The activation swap is for the vanilla RNN; a {cfg.cell.upper()} "
                                "keeps its σ and tanh gates. Reset the activation knob.")
        cfg = replace(cfg, cell=f"rnn_{whatif.activation}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if whatif.whh_scale != 1.0:
        for key in state:
            if key.startswith("layers.") and ".weight_hh_l0" in key:
                state[key] = state[key] * whatif.whh_scale
    new = CharRNN(cfg)
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


# =============================================================================== results
@dataclass
class NonFinite:
    """inf/nan found in one series. ``steps``: up to 20 steps t with a non-finite value."""

    inf: int = 0
    nan: int = 0
    steps: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.inf or self.nan)

    def describe(self) -> str:
        parts = []
        if self.inf:
            parts.append(f"{self.inf} infinite")
        if self.nan:
            parts.append(f"{self.nan} NaN")
        return " and ".join(parts) + " value(s)" if parts else "all finite"


def _nonfinite(values: Tensor, steps: Tensor | None = None) -> NonFinite:
    """values: (n,) or (n, …); steps: (n,) step index per row (default 0…n−1)."""
    if values.numel() == 0 or bool(torch.isfinite(values.sum())):
        return NonFinite()       # fast path: a finite sum means every value is finite
    v = values.reshape(values.shape[0], -1) if values.dim() > 1 else values.reshape(-1, 1)
    inf = torch.isinf(v)
    nan = torch.isnan(v)
    bad = (inf | nan).any(dim=1)
    idx = bad.nonzero().flatten()
    st = steps[idx] if steps is not None else idx
    return NonFinite(int(inf.sum()), int(nan.sum()), tuple(int(s) for s in st.tolist()[:20]))


def forward_nonfinite(tr: Trace, upto: int | None = None) -> NonFinite:
    """inf/nan in the forward states H_t (and C_t) of every layer, steps 0 … ``upto``."""
    parts = [tr[n] for n in tr.names() if n.endswith(".h") or n.endswith(".c")]
    if upto is not None:
        parts = [p[: upto + 1] for p in parts]
    if all(bool(torch.isfinite(p.sum())) for p in parts):
        return NonFinite()       # fast path, without concatenating the states
    return _nonfinite(torch.cat(parts, dim=1))


@dataclass
class RateFit:
    """Least-squares fit log‖·‖ ≈ a + d·log(factor) over distances d (finite, non-zero points only).

    factor: the per-step multiplier (< 1 vanishing, > 1 exploding); nan when fewer than 2 points.
    intercept: the fitted value at distance 0. d_min/d_max: the fitted range. n_points: how many
    points were used; n_excluded: points in that range skipped for being 0, inf or nan.
    r2: coefficient of determination of the log-linear fit.
    """

    factor: float
    log10_factor: float
    intercept: float
    d_min: int
    d_max: int
    n_points: int
    n_excluded: int
    r2: float

    def steps_to_shrink(self, ratio: float = 0.01) -> float:
        """Steps after which the fitted curve has shrunk (or grown) by ``ratio`` (e.g. 1 %)."""
        if not math.isfinite(self.log10_factor) or self.log10_factor == 0:
            return math.inf
        return abs(math.log10(ratio) / self.log10_factor)


def fit_rate(distance: Tensor, log10_values: Tensor, d_min: int = 1, d_max: int | None = None) -> RateFit:
    """Fit the per-step factor of a curve. distance: (n,) ints; log10_values: (n,) float64
    (−inf for exact zeros, nan/inf for non-finite norms)."""
    d = distance.double()
    y = log10_values.double()
    in_range = d >= d_min
    if d_max is not None:
        in_range &= d <= d_max
    ok = in_range & torch.isfinite(y)
    n = int(ok.sum())
    excluded = int(in_range.sum()) - n
    if n < 2:
        return RateFit(math.nan, math.nan, math.nan, d_min, d_max or d_min, n, excluded, math.nan)
    x, yy = d[ok], y[ok]
    xm, ym = x.mean(), yy.mean()
    sxx = ((x - xm) ** 2).sum()
    if sxx == 0:
        return RateFit(math.nan, math.nan, math.nan, int(x.min()), int(x.max()), n, excluded, math.nan)
    slope = float(((x - xm) * (yy - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    resid = yy - (intercept + slope * x)
    sst = float(((yy - ym) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / sst if sst > 0 else 1.0
    return RateFit(10 ** slope, slope, 10 ** intercept if intercept < 300 else math.inf,
                   int(x.min()), int(x.max()), n, excluded, r2)


def _log10(v: Tensor) -> Tensor:
    """log10 in float64 keeping 0 → −inf, inf → inf, nan → nan."""
    with torch.no_grad():
        return torch.log10(v.double())


@dataclass
class ClipReport:
    """What clipping the parameter gradients of the curve's loss did.

    grad_norm: ‖g‖ over all parameters before clipping; grad_norm_after: after.
    factor: the global-norm factor min(1, θ/‖g‖) (1.0 when only element-wise clipping is on).
    fraction_clipped: share of parameter entries changed by element-wise clipping (0 when off).
    per_parameter: name → (norm before, norm after), PyTorch parameter names.
    """

    grad_norm: float
    grad_norm_after: float
    factor: float
    fraction_clipped: float
    per_parameter: dict[str, tuple[float, float]]
    theta: float | None = None
    value: float | None = None


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
    truncated_from: with truncation k (single loss), the distance from which gradients are cut (= k).
    clip: ClipReport when a clipping knob is on (the update sees ``clip.factor`` × every norm).
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
            out[f"layer{l}.h"] = self.h_norms[l]
            if self.c_norms is not None:
                out[f"layer{l}.c"] = self.c_norms[l]
        return out

    @property
    def top(self) -> str:
        return f"layer{self.num_layers - 1}.h"

    @property
    def any_nonfinite(self) -> bool:
        return any(nf.any for nf in self.nonfinite.values())


# =============================================================================== per-layer terms
@dataclass
class _Layer:
    """Everything the backward pass of one layer needs, as (T, …) tensors (row-vector convention).

    w_hh: (G·h, h) and w_ih: (G·h, d) PyTorch layouts (pre = x @ w_ih.T + h_prev @ w_hh.T), G = 1/3/4.
    rnn:  D (T, h) = φ'(pre).
    gru:  Qh (T, 3, h) maps dH_t to the adjoints of [h W_hr, h W_hz, h W_hn + b_hn]; Qx (T, 3, h) maps
          dH_t to the pre-activation adjoints [a_r, a_z, a_n]; z (T, h) the direct path Z_t ⊙ ·.
    lstm: K (T, h) = O_t ⊙ (1 − tanh² C_t) (dC_t += dH_t ⊙ K), P (T, 4, h): pre-activation adjoints
          are [dC·P_i, dC·P_f, dC·P_g, dH·P_o]; f (T, h) the forget gate (dC_{t−1} = dC_t ⊙ F_t).
    """

    cell: str
    G: int
    h: Tensor            # (T, h) H_t
    h_prev: Tensor       # (T, h) H_{t-1}
    x: Tensor            # (T, d) input of the layer (one-hot X_t or the layer below's H_t)
    w_hh: Tensor
    w_ih: Tensor
    D: Tensor | None = None
    Qh: Tensor | None = None
    Qx: Tensor | None = None
    z: Tensor | None = None
    K: Tensor | None = None
    P: Tensor | None = None
    f: Tensor | None = None


def _layer_terms(model: CharRNN, tr: Trace, l: int) -> _Layer:
    cfg = model.config
    mod = model.layers[l]
    H = tr[f"layer{l}.h"]
    T, h = H.shape
    dt = H.dtype
    h_prev = torch.cat([H.new_zeros(1, h), H[:-1]], dim=0)
    x = model.one_hot(tr.ids).to(dt) if l == 0 else tr[f"layer{l - 1}.h"]
    w_hh = mod.weight_hh_l0.detach().to(dt)
    w_ih = mod.weight_ih_l0.detach().to(dt)
    cell = cfg.cell
    if cell.startswith("rnn"):
        D = (1 - H * H) if cell == "rnn_tanh" else (H > 0).to(dt)
        return _Layer(cell, 1, H, h_prev, x, w_hh, w_ih, D=D)
    if cell == "gru":
        z, r, n = tr[f"layer{l}.gates.z"], tr[f"layer{l}.gates.r"], tr[f"layer{l}.candidate"]
        hn = torch.addmm(mod.bias_hh_l0.detach()[2 * h:].to(dt), h_prev, w_hh[2 * h:].T)
        qn = (1 - z) * (1 - n * n)                       # ∂H/∂a_n
        qz = (h_prev - n) * z * (1 - z)                  # ∂H/∂a_z
        qr = qn * hn * r * (1 - r)                       # ∂H/∂a_r
        Qx = torch.stack([qr, qz, qn], dim=1)
        Qh = torch.stack([qr, qz, qn * r], dim=1)
        return _Layer(cell, 3, H, h_prev, x, w_hh, w_ih, Qh=Qh, Qx=Qx, z=z)
    c = tr[f"layer{l}.c"]
    i, f, o, g = (tr[f"layer{l}.gates.i"], tr[f"layer{l}.gates.f"], tr[f"layer{l}.gates.o"],
                  tr[f"layer{l}.candidate"])
    tc = torch.tanh(c)
    K = torch.addcmul(o, o * tc, tc, value=-1)                  # O_t ⊙ (1 − tanh² C_t)
    P = torch.empty(T, 4, h, dtype=dt)                           # written slot by slot, no temporaries
    torch.mul(g, torch.addcmul(i, i, i, value=-1), out=P[:, 0])  # C̃ ⊙ I(1 − I)
    P[0, 1].zero_()                                              # C_{−1} = 0
    torch.mul(c[:-1], torch.addcmul(f, f, f, value=-1)[1:], out=P[1:, 1])   # C_{t−1} ⊙ F(1 − F)
    torch.addcmul(i, i, g * g, value=-1, out=P[:, 2])            # I ⊙ (1 − C̃²)
    torch.mul(tc, torch.addcmul(o, o, o, value=-1), out=P[:, 3])  # tanh C ⊙ O(1 − O)
    return _Layer(cell, 4, H, h_prev, x, w_hh, w_ih, K=K, P=P, f=f)


def _diag_sum(coefs: Tensor, W: Tensor) -> Tensor:
    """Σ_g diag(coefs[g]) W[g]: coefs (G, h), W (G, h, d) → (h, d), without a (G, h, d) temporary."""
    out = W[0] * coefs[0][:, None]
    for g in range(1, coefs.shape[0]):
        out.addcmul_(W[g], coefs[g][:, None])
    return out


def _step_matrices(L: _Layer, t: int, scale: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """The per-step Jacobians for matrix adjoints (rows × h) at step t, times ``scale``.

    rnn/gru: (A, None) with dH_{t−1} = dH_t @ A, A (h × h).
    lstm:    (B, Cm) with dH_{t−1} = dC_t^tot @ B + dH_t @ Cm, both (h × h).
    The scale is folded into the per-unit coefficient vectors (h values), not the matrices.
    """
    h = L.h.shape[1]
    if L.cell.startswith("rnn"):
        return (L.D[t] * scale)[:, None] * L.w_hh, None
    if L.cell == "gru":
        A = _diag_sum(L.Qh[t] * scale, L.w_hh.view(3, h, h))
        A.diagonal().add_(L.z[t], alpha=scale)
        return A, None
    W = L.w_hh.view(4, h, h)
    P = L.P[t] * scale
    return _diag_sum(P[:3], W[:3]), W[3] * P[3][:, None]


def _input_matrices(L: _Layer, t: int) -> tuple[Tensor, Tensor | None]:
    """Like :func:`_step_matrices` but towards the layer's input (h × d): the adjoint sent below."""
    h = L.h.shape[1]
    d = L.w_ih.shape[1]
    if L.cell.startswith("rnn"):
        return L.D[t][:, None] * L.w_ih, None
    if L.cell == "gru":
        return _diag_sum(L.Qx[t], L.w_ih.view(3, h, d)), None
    W = L.w_ih.view(4, h, d)
    return _diag_sum(L.P[t, :3], W[:3]), W[3] * L.P[t, 3][:, None]


# =============================================================================== backward (one adjoint)
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


def _param_grads(model: CharRNN, layers: list[_Layer], backs: list[dict], dO: Tensor,
                 top_h: Tensor) -> dict[str, Tensor]:
    """∂L/∂θ for every parameter (PyTorch names) from the stored adjoints (batched matmuls)."""
    grads: dict[str, Tensor] = {}
    for l, (L, b) in enumerate(zip(layers, backs)):
        da, dhh = b["da"], b["dhh"]
        grads[f"layers.{l}.weight_ih_l0"] = da.T @ L.x
        grads[f"layers.{l}.weight_hh_l0"] = dhh.T @ L.h_prev
        grads[f"layers.{l}.bias_ih_l0"] = da.sum(0)
        grads[f"layers.{l}.bias_hh_l0"] = dhh.sum(0)
    grads["output.weight"] = dO.T @ top_h
    grads["output.bias"] = dO.sum(0)
    return grads


def _clip(grads: dict[str, Tensor], theta: float | None, value: float | None) -> ClipReport:
    before = {k: float(v.double().norm()) for k, v in grads.items()}
    total = math.sqrt(sum(n * n for n in before.values())) if all(
        math.isfinite(n) for n in before.values()) else math.nan
    if any(math.isinf(n) for n in before.values()):
        total = math.inf
    factor = 1.0
    clipped = dict(grads)
    if theta is not None:
        if math.isnan(total):
            factor = math.nan
        elif total > theta:
            factor = theta / total  # 0 when total is inf
        clipped = {k: v * factor for k, v in clipped.items()}
    n_changed, n_total = 0, 0
    if value is not None:
        for k, v in clipped.items():
            n_changed += int((v.abs() > value).sum())
            n_total += v.numel()
            clipped[k] = v.clamp(-value, value)  # nan stays nan
    after = {k: float(v.double().norm()) for k, v in clipped.items()}
    total_after = math.sqrt(sum(n * n for n in after.values())) if all(
        math.isfinite(n) for n in after.values()) else math.nan
    return ClipReport(total, total_after, factor, n_changed / n_total if n_total else 0.0,
                      {k: (before[k], after[k]) for k in grads}, theta, value)


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
    is_lstm = work.config.cell == "lstm"
    c_norms = ([torch.linalg.vector_norm(b["dC"][:n], dim=1, dtype=torch.float64) for b in backs]
               if is_lstm else None)
    fits, nonfin, zeros = {}, {}, {}
    series = {}
    for l in range(len(layers)):
        series[f"layer{l}.h"] = h_norms[l]
        if c_norms is not None:
            series[f"layer{l}.c"] = c_norms[l]
    d_max = (whatif.truncate - 1) if (whatif.truncate and loss != "sum") else None
    for name, s in series.items():
        fits[name] = fit_rate(distance, _log10(s), 1, d_max)
        nonfin[name] = _nonfinite(s, steps)
        zeros[name] = int((s == 0).sum())
    clip = None
    if whatif.clip_norm is not None or whatif.clip_value is not None:
        grads = _param_grads(work, layers, backs, dO, tr[f"layer{len(layers) - 1}.h"])
        clip = _clip(grads, whatif.clip_norm, whatif.clip_value)
    cfg = work.config
    return NormCurve(
        loss=loss, loss_step=last, loss_steps=loss_steps, loss_value=loss_value, steps=steps,
        distance=distance, chars=list(tr.chars), h_norms=h_norms, c_norms=c_norms, fits=fits,
        nonfinite=nonfin, zeros=zeros, cell=cfg.cell, num_layers=cfg.num_layers,
        hidden_size=cfg.hidden_size, whatif=whatif, dtype=str(tr["layer0.h"].dtype).replace("torch.", ""),
        truncated_from=whatif.truncate if (whatif.truncate and loss != "sum") else None, clip=clip,
        forward=forward_nonfinite(tr, last),
        grads_h=[b["dH"][:n].clone() for b in backs] if keep_grads else None,
        grads_c=[b["dC"][:n].clone() for b in backs] if (keep_grads and is_lstm) else None)


@torch.no_grad()
def parameter_gradients(model: CharRNN, text: str | Trace, *, loss: str = "last",
                        step: int | None = None, whatif: WhatIf | None = None,
                        dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """∂L/∂θ for every parameter (PyTorch names, PyTorch shapes), unclipped, from the same hand-written
    backward pass as :func:`norm_curve` (truncation applies). Mainly for checks and clipping."""
    bp = _backprop(model, text, loss, step, whatif or NO_WHATIF, dtype)
    return _param_grads(bp.work, bp.layers, bp.backs, bp.dO, bp.trace[f"layer{len(bp.layers) - 1}.h"])


# =============================================================================== Jacobian chain
@dataclass
class JacobianChain:
    """‖∂H_T/∂H_t‖ within one layer for every t < T (T = ``end``).

    steps: (n,) long, t = start … end−1 (start = 0 unless ``max_distance`` limits it);
    distance: (n,) = end − t.
    log10_spectral / log10_frobenius: (n,) float64 log10 of the spectral norm (largest singular
        value) and the Frobenius norm; −inf for an exactly zero Jacobian, nan/inf when the forward
        pass itself overflowed. The matrix is renormalised every step (its scale is tracked as a
        float64 logarithm), so vanishing or exploding products never underflow or overflow.
    spectral / frobenius: the same as plain numbers (10**log10; 0 below ~1e−308, inf above ~1e308).
    When the forward pass overflowed (``forward`` lists inf/nan states of this layer), the Jacobian
    at such a state is undefined: every t whose chain t+1 … T passes one is set to nan.
    For the LSTM, ``*_c`` hold ‖∂H_T/∂C_t‖ (C_t perturbed, H_t held), else None.
    fit_spectral / fit_frobenius: per-step factors (RateFit over distances ≥ 1).
    method: "exact SVD" or "subspace iteration (k=…, tol=…)" for the spectral norm.
    """

    end: int
    layer: int
    steps: Tensor
    distance: Tensor
    log10_spectral: Tensor
    log10_frobenius: Tensor
    log10_spectral_c: Tensor | None
    log10_frobenius_c: Tensor | None
    fit_spectral: RateFit
    fit_frobenius: RateFit
    nonfinite: NonFinite
    zeros: int
    method: str
    cell: str
    hidden_size: int
    whatif: WhatIf
    chars: list[str] = field(default_factory=list)
    forward: NonFinite = field(default_factory=NonFinite)

    @property
    def spectral(self) -> Tensor:
        return 10 ** self.log10_spectral

    @property
    def frobenius(self) -> Tensor:
        return 10 ** self.log10_frobenius


#: Relative size below which a new Krylov direction counts as already in the basis.
_DEFLATE = 1e-4


class _SpectralBatch:
    """Largest singular values of a sequence of matrices (out × in), computed chunk by chunk.

    ``exact``: batched SVD. Otherwise a block Krylov (block Lanczos-style) Rayleigh–Ritz method on
    the *left* singular space — the outputs H_T, whose top directions settle quickly along a
    backprop chain: the basis [U, (M Mᵀ)U, (M Mᵀ)²U, …] (k columns per block, orthonormalised
    block by block) grows until the largest Ritz value σ₁(Qᵀ M) changes by at most ``tol``
    (relative) for every matrix of the chunk. U is the previous chunk's top-k left Ritz vectors.
    Ritz values are lower bounds that converge to σ₁ from below. The very first block comes from
    an exact SVD of the first matrix; a matrix still unconverged at ``max_depth`` gets an exact SVD,
    so the answer is never silently approximate beyond ``tol``. Batched: LAPACK is called per chunk
    and Krylov depth, not per step.
    """

    def __init__(self, n_out: int, dtype: torch.dtype, exact: bool, k: int = 4, tol: float = 1e-7,
                 max_depth: int = 12):
        g = torch.Generator().manual_seed(0)
        self.exact = exact
        self.k = min(k, n_out)
        self.U: Tensor | None = None
        self.n_random = 2
        self._random = torch.randn(self.n_random, n_out, generator=g, dtype=dtype)
        self.tol, self.max_depth = tol, max_depth
        self.depths: list[int] = []
        self.fallbacks = 0

    def __call__(self, M: Tensor) -> Tensor:
        """M: (B, out, in), finite. Returns (B,) float64 spectral norms.

        Basis blocks are kept as orthonormal *rows* (B, k, out): CPU batched matmuls of thin
        row-major blocks are an order of magnitude faster than the column-major equivalents.
        """
        if M.shape[0] == 0:
            return torch.empty(0, dtype=torch.float64)
        if self.exact:
            return torch.linalg.matrix_norm(M.double(), ord=2)
        n_out = M.shape[1]
        B = M.shape[0]
        if self.U is None:
            self.U = torch.linalg.svd(M[0], full_matrices=False)[0][:, : self.k].T.contiguous()
        # plus a few fixed random directions, so no matrix's top direction can be missed entirely
        start = torch.cat([self.U, self._random[: min(self.n_random, max(n_out - self.k, 0))]], dim=0)
        Q = torch.linalg.qr(start.T)[0].T                      # (k+r, out), orthonormal rows
        basis = [Q.expand(B, -1, -1).contiguous()]             # (B, k+r, out)
        proj = [torch.matmul(Q, M)]                            # (B, k+r, in): blocks of Qᵀ M
        prev = None
        converged = torch.zeros(B, dtype=torch.bool)
        for depth in range(self.max_depth):
            P = torch.cat(proj, dim=1).double()
            # σ₁(P) from the small Gram matrix P Pᵀ (float64): far cheaper than an SVD of P
            s = torch.linalg.eigvalsh(P @ P.transpose(1, 2))[:, -1].clamp_min(0).sqrt()
            if prev is not None:
                converged = (s - prev).abs() <= self.tol * s.clamp_min(1e-300)
                if bool(converged.all()):
                    break
            prev = s
            if depth == self.max_depth - 1 or sum(b.shape[1] for b in basis) + basis[0].shape[1] > n_out:
                break                                           # unconverged ones get an exact SVD
            Z = torch.bmm(proj[-1], M.transpose(1, 2))          # (B, k, out) = (M Mᵀ Q_last)ᵀ
            scale = torch.linalg.matrix_norm(Z).clamp_min(1e-300)  # (B,)
            for _ in range(2):                                  # block Gram–Schmidt, twice
                for Qb in basis:
                    Z = torch.baddbmm(Z, torch.bmm(Z, Qb.transpose(1, 2)), Qb, alpha=-1)
            # rank-revealing orthonormalisation: directions already in the basis (an invariant
            # subspace was reached) are dropped as zero rows, never normalised noise
            # (via the small float64 Gram matrix Z Zᵀ: its eigenvalues are σ², its eigenvectors
            # whiten Z — much cheaper than a batched SVD of the wide Z)
            Zd = Z.double()
            lam, E = torch.linalg.eigh(Zd @ Zd.transpose(1, 2))
            keep = lam > (_DEFLATE * scale.double()[:, None]) ** 2
            Wz = E * torch.where(keep, lam.clamp_min(1e-300).rsqrt(), torch.zeros_like(lam))[:, None, :]
            Z = (Wz.transpose(1, 2) @ Zd).to(Z.dtype)
            for Qb in basis:
                Z = torch.baddbmm(Z, torch.bmm(Z, Qb.transpose(1, 2)), Qb, alpha=-1)
            norms = torch.linalg.vector_norm(Z, dim=2, keepdim=True)
            Z = torch.where(norms > 0.5, Z / norms.clamp_min(1e-30), torch.zeros_like(Z))
            basis.append(Z)
            proj.append(torch.bmm(Z, M))
        self.depths.append(len(basis))
        if not bool(converged.all()):
            bad = ~converged
            self.fallbacks += int(bad.sum())
            s = s.clone()
            s[bad] = torch.linalg.matrix_norm(M[bad].double(), ord=2)
        # warm start for the next chunk: the top-k left Ritz vectors of the last matrix
        P = torch.cat(proj, dim=1)[-1]                          # (K, in)
        Ub = torch.linalg.svd(P, full_matrices=False)[0][:, : self.k]   # (K, k)
        ritz = Ub.T @ torch.cat(basis, dim=1)[-1]               # (k, out)
        self.U = torch.linalg.qr(ritz.T)[0].T.contiguous()
        return s


@torch.no_grad()
def jacobian_chain(model: CharRNN, text: str | Trace, *, end: int | None = None, layer: int | None = None,
                   whatif: WhatIf | None = None, dtype: torch.dtype | None = None,
                   exact: bool | None = None, max_distance: int | None = None,
                   chunk_elements: int = 1 << 23) -> JacobianChain:
    """‖∂H_T/∂H_t‖₂ and ‖∂H_T/∂H_t‖_F for t = 0 … T−1 within ``layer`` (default: the top layer).

    end: T, the step whose state is differentiated (default: the last step). Layers above never feed
    back, so only this layer's recurrence matters. exact: spectral norm by SVD (default when
    h ≤ EXACT_SVD_MAX_H) or by warm-started block subspace iteration (relative tolerance 1e−6).
    max_distance: only t = T − max_distance … T − 1 (cost is linear in it); default all t < T.
    Cost: one (h × h) @ (h × h) product per step (two for the LSTM) plus the norms, computed in
    chunks of ``chunk_elements`` matrix entries. Truncation and clipping knobs do not apply.
    """
    whatif = whatif or NO_WHATIF
    work, tr = _prepare(model, text, whatif, dtype)
    T = len(tr)
    cfg = work.config
    layer = cfg.num_layers - 1 if layer is None else layer
    if not isinstance(layer, int) or not 0 <= layer < cfg.num_layers:
        raise GradientError(f"layer must be in 0 … {cfg.num_layers - 1}, got {layer!r}.")
    end = T - 1 if end is None else end
    if not isinstance(end, int) or not 1 <= end <= T - 1:
        raise GradientError(f"The end step T must be in 1 … {T - 1} (it needs earlier steps), got {end!r}.")
    L = _layer_terms(work, tr, layer)
    h = cfg.hidden_size
    dt = L.h.dtype
    exact = h <= EXACT_SVD_MAX_H if exact is None else exact
    is_lstm = cfg.cell == "lstm"
    if max_distance is not None and (not isinstance(max_distance, int) or max_distance < 1):
        raise GradientError(f"max_distance must be a whole number ≥ 1, got {max_distance!r}.")
    start = 0 if max_distance is None else max(0, end - max_distance)   # smallest t computed
    n = end - start
    blocks = ("h", "c") if is_lstm else ("h",)
    finders = {b: _SpectralBatch(h, dt, exact) for b in blocks}
    log_fro = {b: torch.empty(n, dtype=torch.float64) for b in blocks}
    log_spec = {b: torch.empty(n, dtype=torch.float64) for b in blocks}
    chunk = max(1, min(n, CHAIN_CHUNK_STEPS, chunk_elements // (h * h)))
    buf = {b: torch.empty(chunk, h, h, dtype=dt) for b in blocks}
    pending: list[int] = []                  # steps j whose matrices sit in buf (same order)
    failures: list[int] = []                 # chunks where LAPACK failed (reported in ``method``)
    scales: list[float] = []                 # log10 of the factor divided out of each stored matrix
    fro_steps = {b: [] for b in blocks}      # ‖stored matrix‖_F of each pending step, per block

    def flush() -> None:
        m = len(pending)
        if not m:
            return
        idx = torch.tensor(pending)
        sc = torch.tensor(scales, dtype=torch.float64)
        for b in blocks:
            Mb = buf[b][:m]
            fro = torch.tensor(fro_steps[b], dtype=torch.float64)                     # (m,)
            good = torch.isfinite(fro) & (fro > 0)
            spec = torch.full((m,), math.nan, dtype=torch.float64)
            spec[torch.isinf(fro)] = math.inf
            spec[fro == 0] = 0.0
            if bool(good.any()):
                try:
                    X, f = (Mb if bool(good.all()) else Mb[good]), fro[good]
                    if bool(((f < 1e-6) | (f > 1e6)).any()):
                        # unit Frobenius norm first, so the Krylov products (≈ ‖M‖³) stay in range
                        spec[good] = finders[b](X / f.to(dt)[:, None, None]) * f
                    else:
                        spec[good] = finders[b](X)
                except torch.linalg.LinAlgError:     # LAPACK gave up: say so, as NaN, not a crash
                    spec[good] = math.nan
                    failures.append(len(pending))
            log_fro[b][idx] = sc + torch.log10(fro)
            log_spec[b][idx] = sc + torch.log10(spec)
            fro_steps[b].clear()
        pending.clear()
        scales.clear()

    fin = torch.finfo(dt)
    safe_lo, safe_hi = math.sqrt(fin.tiny) * 1e4, math.sqrt(fin.max) / 1e4

    def frobenius(X: Tensor) -> float:
        n_ = float(torch.linalg.vector_norm(X))          # in X's dtype: cheap
        if not safe_lo < n_ < safe_hi:                   # squares may have under/overflowed
            n_ = float(torch.linalg.vector_norm(X, dtype=torch.float64))
        return n_

    M = torch.eye(h, dtype=dt)                      # ∂H_T/∂H_t / 10^log_scale, rows: units of H_T
    Mc = torch.zeros(h, h, dtype=dt) if is_lstm else None
    scaled = torch.empty(h, h, dtype=dt)            # rnn: M · diag(D_t); lstm: the total C_t adjoint
    log_scale = 0.0                                 # log10 of the factor divided out of M (and Mc)
    inv = 1.0                                       # 1 / ‖previous M‖, folded into this step's factors
    for t in range(end, start, -1):                 # from ∂H_T/∂H_t to ∂H_T/∂H_{t−1}
        i = len(pending)
        dst = buf["h"][i]                           # written in place: no per-step allocation
        if dst.data_ptr() == M.data_ptr():          # chunk of 1 (huge h): never read what we write
            M = M.clone()
        if is_lstm:
            B, Cm = _step_matrices(L, t, inv)
            torch.addcmul(Mc, M, L.K[t][None, :], out=scaled)       # total adjoint of C_t (unscaled)
            torch.mm(M, Cm, out=dst)
            dst.addmm_(scaled, B)
            Mc = torch.mul(scaled, (L.f[t] * inv)[None, :], out=buf["c"][i])
        elif L.cell.startswith("rnn"):
            torch.mul(M, (L.D[t] * inv)[None, :], out=scaled)      # M diag(D_t) W_hh = M A_t
            torch.mm(scaled, L.w_hh, out=dst)
        else:
            A, _ = _step_matrices(L, t, inv)
            torch.mm(M, A, out=dst)
        M = dst
        pending.append(t - 1 - start)
        norms = {"h": frobenius(M)}
        if is_lstm:
            norms["c"] = frobenius(Mc)
        total = math.hypot(*norms.values())
        inv = 1.0
        if math.isfinite(total) and total > 0:
            # renormalise (so the product never under/overflows; the scale lives in log_scale): folded
            # into the next step's coefficient vectors, or, if 1/total would overflow the dtype
            # (a subnormal norm), applied to the matrices themselves
            if total * torch.finfo(dt).max > 1e6:
                inv = 1.0 / total
            else:
                M.div_(total)
                if is_lstm:
                    Mc.div_(total)
                log_scale += math.log10(total)
                norms = {b_: v / total for b_, v in norms.items()}
        for b_ in blocks:
            fro_steps[b_].append(norms[b_])
        scales.append(log_scale)
        log_scale -= math.log10(inv)
        if len(pending) == chunk:
            flush()
    flush()
    states = L.h if not is_lstm else torch.cat([L.h, tr[f"layer{layer}.c"]], dim=1)
    fwd = _nonfinite(states[: end + 1])
    if fwd.any:
        bad = ~torch.isfinite(states[: end + 1]).all(dim=1)          # (end+1,)
        # t is undefined if any state in t+1 … end is non-finite (suffix "any" from the end)
        later_bad = torch.flip(torch.cummax(torch.flip(bad.int(), [0]), 0).values, [0]).bool()
        undefined = later_bad[start + 1:end + 1]                    # for t = start … end−1
        for arr in (*log_spec.values(), *log_fro.values()):
            arr[undefined] = math.nan
    steps = torch.arange(start, end)
    distance = end - steps
    both = torch.stack([log_spec["h"], log_fro["h"]], dim=1)
    nf = _nonfinite(torch.where(torch.isneginf(both), torch.zeros_like(both), both), steps)
    method = ("exact SVD" if exact else
              f"block Krylov Rayleigh–Ritz (k={finders['h'].k}, relative tol {finders['h'].tol:g})")
    if failures:
        method += f"; the SVD failed to converge in {len(failures)} chunk(s): those spectral norms are NaN"
    return JacobianChain(
        end=end, layer=layer, steps=steps, distance=distance, log10_spectral=log_spec["h"],
        log10_frobenius=log_fro["h"], log10_spectral_c=log_spec.get("c"),
        log10_frobenius_c=log_fro.get("c"),
        fit_spectral=fit_rate(distance, log_spec["h"]), fit_frobenius=fit_rate(distance, log_fro["h"]),
        nonfinite=nf, zeros=int(torch.isneginf(log_fro["h"]).sum()), method=method, cell=cfg.cell,
        hidden_size=h, whatif=whatif, chars=list(tr.chars), forward=fwd)


# =============================================================================== gradient map
@dataclass
class GradientMap:
    """G[t, k] = ‖∂ℓ_t/∂H_k‖ for loss steps t (rows) and every step k (columns), per layer.

    loss_steps: (R,) long, the loss step of each row, ascending (every ``stride``-th loss step,
        always including the last one, T−2).
    maps[l]: (R, T) float32 for layer l; entries with k > t are 0 (ℓ_t does not depend on H_k) —
        ``upstream`` (R, T) bool marks k ≤ t. Within the upstream cells 0 is an exact zero
        (underflow, dead ReLUs, truncation), inf/nan are counted in ``nonfinite``.
    stride / downsampled / message: row downsampling chosen to respect MAP_MAX_MACS and
        MAP_MAX_ROWS; ``message`` explains it in plain words (None when every loss is a row).
    estimated_macs: the cost estimate (multiply–adds) that drove the choice.
    """

    loss_steps: Tensor
    maps: list[Tensor]
    upstream: Tensor
    stride: int
    downsampled: bool
    message: str | None
    estimated_macs: float
    nonfinite: dict[str, NonFinite]
    zeros: dict[str, int]
    chars: list[str]
    cell: str
    num_layers: int
    hidden_size: int
    whatif: WhatIf
    forward: NonFinite = field(default_factory=NonFinite)


def _map_macs(T: int, rows: list[int], h: int, L: int, cell: str, truncate: int | None) -> float:
    per_row_steps = sum(min(t + 1, truncate) if truncate else t + 1 for t in rows)
    mult = 2 if cell == "lstm" else 1
    return float(per_row_steps) * h * h * mult * (2 * L - 1)


def plan_map_rows(T: int, h: int, num_layers: int, cell: str, truncate: int | None = None,
                  max_macs: float = MAP_MAX_MACS, max_rows: int = MAP_MAX_ROWS) -> tuple[list[int], int, float]:
    """Which loss steps become rows: (rows, stride, estimated multiply–adds).

    Every loss step t = 0 … T−2 if the estimate Σ_rows (steps back) · h² · (2 for LSTM) · (2L−1)
    is within ``max_macs`` and there are at most ``max_rows`` rows; otherwise every stride-th step
    counted back from T−2. Raises GradientError when even 2 rows do not fit or T > MAP_MAX_STEPS.
    """
    if T < 2:
        raise GradientError("The text needs at least 2 characters for a gradient map.")
    if T > MAP_MAX_STEPS:
        raise GradientError(f"The gradient map has one column per step; {T:,} steps are over the "
                            f"{MAP_MAX_STEPS:,}-step cap. Use a shorter text.")
    stride = max(1, math.ceil((T - 1) / max_rows))
    while True:
        rows = list(range(T - 2, -1, -stride))[::-1]
        macs = _map_macs(T, rows, h, num_layers, cell, truncate)
        if macs <= max_macs or len(rows) <= 2:
            break
        stride = max(stride + 1, int(stride * math.sqrt(macs / max_macs)))
    if macs > max_macs * 4:
        raise GradientError(f"A gradient map for {T:,} steps of this {num_layers}-layer {cell} with "
                            f"h = {h} would take ~{macs:.1e} multiply–adds, over the cap even with "
                            "2 rows. Use a shorter text.")
    return rows, stride, macs


@torch.no_grad()
def gradient_map(model: CharRNN, text: str | Trace, *, whatif: WhatIf | None = None,
                 dtype: torch.dtype | None = None, max_macs: float = MAP_MAX_MACS,
                 max_rows: int = MAP_MAX_ROWS) -> GradientMap:
    """G[t, k] = ‖∂ℓ_t/∂H_k‖ for all k ≤ t, for every layer (see :class:`GradientMap`).

    All losses are back-propagated together: one adjoint row per loss, stepping back in time over
    all layers at once, so step k costs one (active rows × h) @ (h × h) product per layer (two for
    the LSTM, plus one towards the layer below). Rows become active at their own step t and, with
    truncation k, leave k steps later, so cost ≈ R·T/2·h² (R rows) and grows as T²·h².
    Above ``max_macs`` multiply–adds the rows are downsampled (``message`` says so).
    """
    whatif = whatif or NO_WHATIF
    work, tr = _prepare(model, text, whatif, dtype)
    cfg = work.config
    T, h, Lnum = len(tr), cfg.hidden_size, cfg.num_layers
    rows, stride, macs = plan_map_rows(T, h, Lnum, cfg.cell, whatif.truncate, max_macs, max_rows)
    R = len(rows)
    layers = [_layer_terms(work, tr, l) for l in range(Lnum)]
    dt = layers[0].h.dtype
    is_lstm = cfg.cell == "lstm"
    row_t = torch.tensor(rows, dtype=torch.long)
    # output adjoint of each loss at its own step: (R, h)
    probs = tr.probs[row_t]
    dO = probs.clone()
    dO[torch.arange(R), tr.ids[row_t + 1]] -= 1
    inject = dO @ work.output.weight.detach().to(dt)
    maps = [torch.zeros(R, T, dtype=torch.float32) for _ in range(Lnum)]
    cur = [torch.zeros(R, h, dtype=dt) for _ in range(Lnum)]       # dH^l_k for the active rows
    curc = [torch.zeros(R, h, dtype=dt) for _ in range(Lnum)] if is_lstm else None
    row_of = {t: j for j, t in enumerate(rows)}
    trunc = whatif.truncate
    j0 = R          # rows j0 … j1−1 are active (t_j ≥ k and, with truncation, t_j − k < trunc)
    j1 = R
    for k in range(rows[-1], -1, -1):
        if k in row_of:                    # loss ℓ_k starts here: a fresh row
            j0 = row_of[k]
            for l in range(Lnum):
                cur[l][j0].zero_()
                if is_lstm:
                    curc[l][j0].zero_()
            cur[Lnum - 1][j0] += inject[j0]
        if trunc:
            while j1 > j0 and rows[j1 - 1] - k >= trunc:
                j1 -= 1
        if j1 <= j0:
            continue
        sl = slice(j0, j1)
        ext = None
        for l in range(Lnum - 1, -1, -1):
            A = cur[l][sl]
            if ext is not None:
                A += ext
            maps[l][sl, k] = A.double().norm(dim=1).float()
            Lr = layers[l]
            if is_lstm:
                dct = curc[l][sl] + A * Lr.K[k]
                if l > 0:
                    Bx, Cx = _input_matrices(Lr, k)
                    ext = torch.addmm(A @ Cx, dct, Bx)
                if k > 0:
                    B, Cm = _step_matrices(Lr, k)
                    nxt = torch.addmm(A @ Cm, dct, B)
                    curc[l][sl] = dct * Lr.f[k]
                    cur[l][sl] = nxt
            else:
                if l > 0:
                    Ax, _ = _input_matrices(Lr, k)
                    ext = A @ Ax
                if k > 0:
                    Am, _ = _step_matrices(Lr, k)
                    cur[l][sl] = A @ Am
    upstream = torch.arange(T)[None, :] <= row_t[:, None]
    nonfin, zeros = {}, {}
    for l in range(Lnum):
        vals = maps[l][upstream]
        nonfin[f"layer{l}.h"] = _nonfinite(maps[l].masked_fill(~upstream, 0.0), row_t)
        zeros[f"layer{l}.h"] = int((vals == 0).sum())
    message = None
    if stride > 1:
        message = (f"The map shows every {_ordinal(stride)} loss step ({R} of {T - 1} rows) to stay under "
                   f"~{max_macs:.0e} multiply–adds (documented cap MAP_MAX_MACS); each shown row is exact.")
    return GradientMap(row_t, maps, upstream, stride, stride > 1, message, macs, nonfin, zeros,
                       list(tr.chars), cfg.cell, Lnum, h, whatif, forward_nonfinite(tr))


# =============================================================================== spectrum
_BLOCKS = {"rnn": ("W_hh",), "gru": ("W_hr", "W_hz", "W_hh"), "lstm": ("W_hi", "W_hf", "W_ho", "W_hc")}
#: The block shown by default: the one the candidate / state update multiplies.
MAIN_BLOCK = {"rnn": "W_hh", "gru": "W_hh", "lstm": "W_hc"}


@dataclass
class BlockSpectrum:
    """Spectrum of one hidden-to-hidden block W (h × h, d2l's row convention H_{t−1} W).

    eigenvalues: (h,) complex128, sorted by decreasing modulus; spectral_radius: max |λ|.
    singular_values: (h,) float64, descending; spectral_norm: the largest (= ‖W‖₂).
    """

    layer: int
    block: str
    eigenvalues: Tensor
    spectral_radius: float
    singular_values: Tensor
    spectral_norm: float


@dataclass
class Spectrum:
    """Per layer, per block spectra. ``blocks[l][name]`` → BlockSpectrum; ``main`` is the block name
    shown by default (W_hh for RNN/GRU — the candidate's — and W_hc for the LSTM)."""

    blocks: list[dict[str, BlockSpectrum]]
    main: str
    cell: str
    whatif: WhatIf

    def radius(self, layer: int, block: str | None = None) -> float:
        return self.blocks[layer][block or self.main].spectral_radius


@torch.no_grad()
def whh_spectrum(model: CharRNN, whatif: WhatIf | None = None, blocks: tuple[str, ...] | None = None) -> Spectrum:
    """Eigenvalues, spectral radius and singular values of W_hh (every block) of every layer.

    Computed in float64 on the textbook matrices (what-ifs applied to a copy). ``blocks`` limits the
    names (e.g. ("W_hc",)); default all of the cell's hidden-to-hidden blocks.
    """
    whatif = whatif or NO_WHATIF
    work = apply_whatif(model, whatif)
    kind = "rnn" if work.config.cell.startswith("rnn") else work.config.cell
    names = blocks or _BLOCKS[kind]
    unknown = set(names) - set(_BLOCKS[kind])
    if unknown:
        raise GradientError(f"A {work.config.cell} has no block(s) {sorted(unknown)}; it has {_BLOCKS[kind]}.")
    out = []
    for l in range(work.config.num_layers):
        p = work.textbook_params(l)
        per = {}
        for name in names:
            W = p[name].double()
            if not torch.isfinite(W).all():
                raise GradientError(f"{name} of layer {l} has non-finite entries.")
            ev = torch.linalg.eigvals(W)
            ev = ev[torch.argsort(ev.abs(), descending=True)]
            sv = torch.linalg.svdvals(W)
            per[name] = BlockSpectrum(l, name, ev, float(ev.abs().max()), sv, float(sv[0]))
        out.append(per)
    return Spectrum(out, MAIN_BLOCK[kind] if MAIN_BLOCK[kind] in names else names[0], work.config.cell, whatif)


# =============================================================================== reading
def _pct(x: float) -> str:
    if x >= 0.01:
        return f"{100 * x:.2g} %"
    return f"{x:.1e} of it"


def _ordinal(n: int) -> str:
    """2 → "2nd", 3 → "3rd", 11 → "11th", 21 → "21st"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def reading(curve: NormCurve, spectrum: Spectrum | None = None, chain: JacobianChain | None = None) -> str:
    """One plain-language paragraph: vanishing or exploding, with the measured per-step factor."""
    top = curve.top
    fit = curve.fits[top]
    parts: list[str] = []
    what = {"last": f"the loss at the last step (s = {curve.loss_step})",
            "step": f"the loss at step s = {curve.loss_step}",
            "sum": "the summed loss over all steps"}[curve.loss]
    if curve.forward.any:
        parts.append(f"The forward pass overflowed from step t = {curve.forward.steps[0]} on "
                     f"({curve.forward.describe()} in the states H_t/C_t), so nothing from that "
                     "step on is meaningful.")
    if curve.any_nonfinite:
        bad = {k: v for k, v in curve.nonfinite.items() if v.any}
        k, v = next(iter(bad.items()))
        near = f"step t = {v.steps[0]}" if v.steps else "an unknown step"
        parts.append(f"The gradient of {what} overflowed: {v.describe()} in {k}, the first one met "
                     f"going back from the loss at {near}. This is an exploding forward or "
                     "backward pass; the plot marks those points instead of dropping them.")
    if math.isfinite(fit.factor):
        f = fit.factor
        if curve.loss == "sum":
            lead = (f"Going back from the last step, ‖∂L/∂H_t‖ of the summed loss changes by a factor "
                    f"of about {f:.3g} per step")
        else:
            lead = (f"Going back in time from {what}, the gradient ‖∂L/∂H_t‖ of the top layer is "
                    f"multiplied by about {f:.3g} per step")
        lead += f" (log-linear fit over distances {fit.d_min}–{fit.d_max}, R² = {fit.r2:.2f})"
        if f < 0.999:
            n1 = fit.steps_to_shrink(0.01)
            parts.append(f"{lead}: it is vanishing — it falls to 1 % after about {n1:.0f} steps and "
                         f"to {_pct(f ** 50)} after 50, so characters that far back barely shape this loss.")
        elif f > 1.001:
            n1 = fit.steps_to_shrink(100)
            parts.append(f"{lead}: it is exploding — it grows 100-fold every {n1:.0f} steps, so far "
                         "earlier steps dominate the update unless the gradient is clipped.")
        else:
            parts.append(f"{lead}: neither vanishing nor exploding over this range.")
        if curve.loss == "sum":
            parts.append("(With the summed loss every step also receives its own nearby losses, "
                         "so the curve flattens instead of decaying; pick one loss step to see the decay.)")
    elif not curve.any_nonfinite:
        parts.append(f"There are too few non-zero points to fit a per-step factor for {what}.")
    zeros = curve.zeros.get(top, 0)
    if zeros and not curve.truncated_from:
        parts.append(f"{zeros} step(s) have a gradient of exactly 0 ({curve.dtype} underflow or "
                     "switched-off ReLUs); they are marked at the bottom of the plot.")
    if curve.c_norms is not None:
        fc = curve.fits.get(f"layer{curve.num_layers - 1}.c")
        if fc is not None and math.isfinite(fc.factor) and math.isfinite(fit.factor):
            parts.append(f"The LSTM's memory cell C_t carries it with a factor of {fc.factor:.3g} per "
                         "step (the forget gate F_t multiplies the path C_{t−1} → C_t directly).")
    if chain is not None and math.isfinite(chain.fit_spectral.factor):
        parts.append(f"The Jacobian chain ‖∂H_T/∂H_t‖₂ of layer {chain.layer} shrinks or grows by "
                     f"{chain.fit_spectral.factor:.3g} per step.")
    if spectrum is not None:
        rho = spectrum.radius(len(spectrum.blocks) - 1)
        name = spectrum.main
        if curve.cell.startswith("rnn"):
            phi = ("tanh′ ≤ 1, which" if curve.cell == "rnn_tanh"
                   else "ReLU′ is 0 or 1, which")
            verdict = ("above 1, so powers of W_hh alone would explode" if rho > 1 else
                       "below 1, so powers of W_hh alone vanish")
            parts.append(f"The book's account: each step multiplies by diag(φ′)·W_hhᵀ; the spectral "
                         f"radius of {name} is {rho:.3g}, {verdict}, and {phi} can only shrink it further.")
        else:
            parts.append(f"The spectral radius of {name} is {rho:.3g}; in a gated cell the gates "
                         "(Z_t for the GRU, F_t for the LSTM) decide how much of it each step passes on.")
    if curve.truncated_from:
        parts.append(f"Truncated BPTT (k = {curve.truncated_from}) sets the gradient to exactly 0 "
                     f"beyond {curve.truncated_from - 1} steps back.")
    elif curve.whatif.truncate:
        parts.append(f"Truncated BPTT detaches the state every {curve.whatif.truncate} steps.")
    if curve.clip is not None:
        c = curve.clip
        if c.theta is not None:
            if c.factor < 1:
                parts.append(f"Global-norm clipping (θ = {c.theta:g}) scales the whole gradient, "
                             f"‖g‖ = {c.grad_norm:.3g}, by {c.factor:.3g}: every step's contribution "
                             "shrinks alike, so clipping tames explosions but cannot revive vanished steps.")
            else:
                parts.append(f"Global-norm clipping (θ = {c.theta:g}) does nothing here: ‖g‖ = "
                             f"{c.grad_norm:.3g} ≤ θ.")
        if c.value is not None:
            parts.append(f"Element-wise clipping (±{c.value:g}) changes {100 * c.fraction_clipped:.2g} % "
                         f"of the parameter-gradient entries (‖g‖ {c.grad_norm:.3g} → {c.grad_norm_after:.3g}) "
                         "and so also bends the update's direction.")
    return " ".join(parts)
