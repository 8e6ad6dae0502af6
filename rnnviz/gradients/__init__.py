"""Gradient dynamics across long backprop chains (d2l §9.7 "Backpropagation Through Time").

For a model and a text of T characters this module measures, without Streamlit:

1. **Norm curve** (:func:`norm_curve`): ‖∂L/∂H_t‖ for every step t and layer — the *total*
   derivative, i.e. through the recurrence H_{t+1} = φ(X_{t+1} W_xh + H_t W_hh + b_h), through the
   layer above and through the output — for the loss L = ℓ_s at the last step, at a chosen step s,
   or the sum Σ_t ℓ_t, where ℓ_t = −log P(chars[t+1] | chars[:t+1]) is the cross-entropy of the
   prediction made at step t. For the LSTM also ‖∂L/∂C_t‖.
   :func:`depth_flow` arranges it as one layer × distance-back array with a per-step (time) and a
   per-layer (depth) factor.
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

Modules, one concern each: :mod:`.whatif` (WhatIf, apply_whatif), :mod:`.nonfinite` (inf/nan
counts), :mod:`.fit` (per-step rate fits), :mod:`.terms` (per-layer Jacobian terms),
:mod:`.backward` (the compiled and torch backward loops), :mod:`.clip` (gradient clipping),
:mod:`.norm_curve` (norm curve, parameter gradients), :mod:`.spectral` (batched spectral norms),
:mod:`.chain` (Jacobian chain), :mod:`.depth` (layers × distance), :mod:`.gmap` (gradient map), :mod:`.spectrum` (W_hh spectrum) and
:mod:`.reading` (the plain-language paragraph). Every name is re-exported here.
"""

from .backward import LOSSES
from .chain import CHAIN_CHUNK_STEPS, EXACT_SVD_MAX_H, JacobianChain, jacobian_chain
from .clip import ClipReport
from .depth import DepthFlow, depth_flow, depth_flow_from_curve, depth_reading
from .errors import GradientError
from .fit import RateFit, fit_rate
from .gmap import MAP_MAX_MACS, MAP_MAX_ROWS, MAP_MAX_STEPS, GradientMap, gradient_map, plan_map_rows
from .nonfinite import NonFinite, forward_nonfinite
from .norm_curve import NormCurve, norm_curve, parameter_gradients
from .reading import reading
from .spectral import _SpectralBatch
from .spectrum import MAIN_BLOCK, BlockSpectrum, Spectrum, whh_spectrum
from .whatif import NO_WHATIF, WhatIf, apply_whatif

__all__ = [
    "CHAIN_CHUNK_STEPS", "EXACT_SVD_MAX_H", "LOSSES", "MAIN_BLOCK", "MAP_MAX_MACS", "MAP_MAX_ROWS",
    "MAP_MAX_STEPS", "NO_WHATIF", "BlockSpectrum", "ClipReport", "DepthFlow", "GradientError", "GradientMap",
    "JacobianChain", "NonFinite", "NormCurve", "RateFit", "Spectrum", "WhatIf", "apply_whatif",
    "depth_flow", "depth_flow_from_curve", "depth_reading", "fit_rate", "forward_nonfinite", "gradient_map", "jacobian_chain", "norm_curve",
    "parameter_gradients", "plan_map_rows", "reading", "whh_spectrum",
]
