"""Ablation: one unit forced to a value after every step of its layer (:func:`forward_with_unit`)
and the predictions compared with the unforced run (:func:`ablate`); see :mod:`rnnviz.units`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import CharRNN
from ..trace import MAX_TRACE_CHARS, TextError, trace
from ..vocab import preprocess
from .counterfactual import kl_divergence
from .refs import UnitRef, UnitsError, unit_kinds


def _layer_step_loop(model: CharRNN, index: int, inp: Tensor, unit: int | None, kind: str,
                     value: float) -> Tensor:
    """Layer ``index`` over inputs (T, d) from the zero state, one step at a time, forcing
    ``kind``[unit] := value after every step (no forcing when unit is None). Returns H (T, h).
    Reads the layer's parameters; writes only fresh tensors."""
    layer = model.layers[index]
    cell = model.config.cell
    H = model.config.hidden_size
    w_hh_t = layer.weight_hh_l0.T
    b_hh = layer.bias_hh_l0
    x_part = torch.addmm(layer.bias_ih_l0, inp, layer.weight_ih_l0.T)     # (T, G·h)
    h = inp.new_zeros(H)
    c = inp.new_zeros(H)
    out = inp.new_empty((inp.shape[0], H))
    for t in range(inp.shape[0]):
        hp = torch.addmv(b_hh, w_hh_t.T, h)                               # H_{t-1} W_hh + b_hh
        if cell == "lstm":
            i, f, g, o = (x_part[t] + hp).split(H)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if unit is not None and kind == "c":
                c = c.clone()
                c[unit] = value
            h = torch.sigmoid(o) * torch.tanh(c)
        elif cell == "gru":
            xr, xz, xn = x_part[t].split(H)
            hr, hz, hn = hp.split(H)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
        else:
            pre = x_part[t] + hp
            h = torch.tanh(pre) if cell == "rnn_tanh" else torch.relu(pre)
        if unit is not None and kind == "h":
            h = h.clone()
            h[unit] = value
        out[t] = h
    return out


@torch.inference_mode()
def forward_with_unit(model: CharRNN, ids: Tensor, layer: int, unit: int | None, kind: str = "h",
                      value: float = 0.0) -> tuple[Tensor, list[Tensor]]:
    """Log-probabilities (T, |V|) and per-layer H [(T, h)] with one unit forced (see module doc).

    Layers below ``layer`` run fused and unchanged; ``layer`` runs step by step; layers above run
    fused on its output. ``unit=None`` runs the same path without forcing (the baseline)."""
    inp = model.one_hot(ids)
    hs = []
    for index, mod in enumerate(model.layers):
        if index == layer:
            out = _layer_step_loop(model, index, inp, unit, kind, value)
        else:
            out = mod(inp)[0]
        hs.append(out)
        inp = out
    logits = model.output(inp)
    return torch.log_softmax(logits, dim=-1), hs


@dataclass
class Ablation:
    """Predictions with and without one unit forced.

    log_probs_base, log_probs_ablated: (T, |V|); surprisal_*: (T−1,) nats of the actual next
    character; kl: (T,) KL(P_base ‖ P_ablated); argmax_changed: (T,) bool; unit_base: (T,) the
    unit's own unforced trajectory.
    """

    unit: UnitRef
    mode: str
    value: float
    chars: list[str]
    tokens: tuple[str, ...]
    log_probs_base: Tensor
    log_probs_ablated: Tensor
    surprisal_base: Tensor
    surprisal_ablated: Tensor
    kl: Tensor
    argmax_changed: Tensor
    unit_base: Tensor

    @property
    def delta_surprisal(self) -> Tensor:
        return self.surprisal_ablated - self.surprisal_base

    @property
    def mean_delta(self) -> float:
        d = self.delta_surprisal
        return float(d.double().mean()) if d.numel() else 0.0

    def top(self, t: int, k: int = 5, ablated: bool = False) -> list[tuple[str, float]]:
        """The k most likely next characters at step t, with probabilities."""
        lp = (self.log_probs_ablated if ablated else self.log_probs_base)[t]
        vals, idx = lp.exp().topk(min(k, lp.numel()))
        return [(self.tokens[int(i)], float(v)) for v, i in zip(vals, idx)]


def ablate(model: CharRNN, text: str, layer: int, unit: int, *, kind: str = "h", mode: str = "zero",
           value: float = 0.0) -> Ablation:
    """Force unit ``kind``[unit] of ``layer`` to 0 (mode "zero") or ``value`` (mode "clamp") over
    ``text`` (the model's preprocessing applied) and compare predictions. Never changes ``model``."""
    cfg = model.config
    if not 0 <= layer < cfg.num_layers:
        raise UnitsError(f"layer must be in 0..{cfg.num_layers - 1}, got {layer}")
    if not 0 <= unit < cfg.hidden_size:
        raise UnitsError(f"unit must be in 0..{cfg.hidden_size - 1}, got {unit}")
    if kind not in unit_kinds(model):
        raise UnitsError(f"kind must be one of {unit_kinds(model)} for a {cfg.cell} model")
    if mode not in ("zero", "clamp"):
        raise UnitsError("mode must be 'zero' or 'clamp'")
    value = 0.0 if mode == "zero" else float(value)
    if not math.isfinite(value):
        raise UnitsError("The clamp value must be a finite number.")
    prepared = preprocess(text, cfg.preprocessing)
    if not prepared:
        raise TextError("The text is empty: type at least one character.")
    if len(prepared) > MAX_TRACE_CHARS:
        raise TextError(f"The text has {len(prepared):,} characters; at most {MAX_TRACE_CHARS:,}.")
    ids = model.vocab.encode(prepared).ids
    lp0, hs0 = forward_with_unit(model, ids, layer, None, kind)
    lp1, _ = forward_with_unit(model, ids, layer, unit, kind, value)
    if kind == "h":
        base_unit = hs0[layer][:, unit].clone()
    else:  # the unforced C_t of the unit, from the trace (same model, same text)
        base_unit = trace(model, prepared, preprocess_text=False)[f"layer{layer}.c"][:, unit].clone()
    nxt = ids[1:, None]
    s0 = -lp0[:-1].gather(1, nxt).squeeze(1)
    s1 = -lp1[:-1].gather(1, nxt).squeeze(1)
    return Ablation(UnitRef(layer, kind, unit), mode, value, list(prepared), cfg.tokens, lp0, lp1,
                    s0, s1, kl_divergence(lp0, lp1), lp0.argmax(1) != lp1.argmax(1), base_unit)
