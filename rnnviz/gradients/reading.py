"""The plain-language reading of a norm curve (with the spectrum and Jacobian chain if given)."""

from __future__ import annotations

import math

from ..cells import spec
from .chain import JacobianChain
from .clip import ClipReport
from .norm_curve import NormCurve
from .spectrum import Spectrum
from ..names import act_name


def _pct(x: float) -> str:
    if x >= 0.01:
        return f"{100 * x:.2g} %"
    return f"{x:.1e} of it"


def reading(curve: NormCurve, spectrum: Spectrum | None = None, chain: JacobianChain | None = None) -> str:
    """One plain-language paragraph: vanishing or exploding, with the measured per-step factor."""
    what = {"last": f"the loss at the last step (s = {curve.loss_step})",
            "step": f"the loss at step s = {curve.loss_step}",
            "sum": "the summed loss over all steps"}[curve.loss]
    parts = _overflow_parts(curve, what) + _rate_parts(curve, what) + _zero_and_cell_parts(curve)
    if chain is not None and math.isfinite(chain.fit_spectral.factor):
        parts.append(f"The Jacobian chain ‖∂H_T/∂H_t‖₂ of layer {chain.layer} shrinks or grows by "
                     f"{chain.fit_spectral.factor:.3g} per step.")
    if spectrum is not None:
        parts.append(_spectrum_part(curve.cell, spectrum))
    if curve.truncated_from:
        parts.append(f"Truncated BPTT (k = {curve.truncated_from}) sets the gradient to exactly 0 "
                     f"beyond {curve.truncated_from - 1} steps back.")
    elif curve.whatif.truncate and curve.whatif.layer is not None and curve.loss != "sum":
        parts.append(f"Truncated BPTT in layer {curve.whatif.layer} only cuts that layer's own path back "
                     f"in time every {curve.whatif.truncate} steps: the layers above still carry the "
                     "gradient back and hand it down at every step, so nothing is cut to exactly 0.")
    elif curve.whatif.truncate:
        parts.append(f"Truncated BPTT detaches the state every {curve.whatif.truncate} steps.")
    if curve.clip is not None:
        parts += _clip_parts(curve.clip)
    return " ".join(parts)


def _overflow_parts(curve: NormCurve, what: str) -> list[str]:
    """Sentences on inf/nan in the gradient and in the forward states (none when all finite)."""
    parts = []
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
    return parts


def _rate_parts(curve: NormCurve, what: str) -> list[str]:
    """Sentences on the top layer's fitted per-step factor: vanishing, exploding or neither."""
    fit = curve.fits[curve.top]
    if not math.isfinite(fit.factor):
        return [] if curve.any_nonfinite else [
            f"There are too few non-zero points to fit a per-step factor for {what}."]
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
        parts = [f"{lead}: it is vanishing — it falls to 1 % after about {n1:.0f} steps and "
                 f"to {_pct(f ** 50)} after 50, so characters that far back barely shape this loss."]
    elif f > 1.001:
        n1 = fit.steps_to_shrink(100)
        parts = [f"{lead}: it is exploding — it grows 100-fold every {n1:.0f} steps, so far "
                 "earlier steps dominate the update unless the gradient is clipped."]
    else:
        parts = [f"{lead}: neither vanishing nor exploding over this range."]
    if curve.loss == "sum":
        parts.append("(With the summed loss every step also receives its own nearby losses, "
                     "so the curve flattens instead of decaying; pick one loss step to see the decay.)")
    return parts


def _zero_and_cell_parts(curve: NormCurve) -> list[str]:
    """Sentences on exact zeros in the top layer and on the LSTM's memory cell path."""
    parts = []
    zeros = curve.zeros.get(curve.top, 0)
    if zeros and not curve.truncated_from:
        parts.append(f"{zeros} step(s) have a gradient of exactly 0 ({curve.dtype} underflow or "
                     "switched-off ReLUs); they are marked at the bottom of the plot.")
    if curve.c_norms is not None:
        fc = curve.fits.get(act_name(curve.num_layers - 1, "c"))
        if fc is not None and math.isfinite(fc.factor) and math.isfinite(curve.fits[curve.top].factor):
            parts.append(f"The LSTM's memory cell C_t carries it with a factor of {fc.factor:.3g} per "
                         "step (the forget gate F_t multiplies the path C_{t−1} → C_t directly).")
    return parts


def _spectrum_part(cell: str, spectrum: Spectrum) -> str:
    """The textbook account: the top layer's spectral radius of the main W_hh block."""
    rho = spectrum.radius(len(spectrum.blocks) - 1)
    name = spectrum.main
    if spec(cell).is_vanilla:
        phi = spec(cell).derivative_note
        verdict = ("above 1, so powers of W_hh alone would explode" if rho > 1 else
                   "below 1, so powers of W_hh alone vanish")
        return (f"The book's account: each step multiplies by diag(φ′)·W_hhᵀ; the spectral "
                f"radius of {name} is {rho:.3g}, {verdict}, and {phi}, which can only shrink it further.")
    return (f"The spectral radius of {name} is {rho:.3g}; in a gated cell the gates "
            "(Z_t for the GRU, F_t for the LSTM) decide how much of it each step passes on.")


def _clip_parts(c: ClipReport) -> list[str]:
    """Sentences on what global-norm and element-wise clipping did to the parameter gradients."""
    parts = []
    of = "" if c.layer is None else f" of layer {c.layer}'s parameters"
    if c.theta is not None:
        if c.factor < 1:
            parts.append(f"Global-norm clipping{of} (θ = {c.theta:g}) scales the whole gradient, "
                         f"‖g‖ = {c.grad_norm:.3g}, by {c.factor:.3g}: every step's contribution "
                         "shrinks alike, so clipping tames explosions but cannot revive vanished steps.")
        else:
            parts.append(f"Global-norm clipping{of} (θ = {c.theta:g}) does nothing here: ‖g‖ = "
                         f"{c.grad_norm:.3g} ≤ θ.")
    if c.value is not None:
        parts.append(f"Element-wise clipping{of} (±{c.value:g}) changes {100 * c.fraction_clipped:.2g} % "
                     f"of the parameter-gradient entries (‖g‖ {c.grad_norm:.3g} → {c.grad_norm_after:.3g}) "
                     "and so also bends the update's direction.")
    return parts
