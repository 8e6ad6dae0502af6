"""Textbook parameter names (d2l's W_x·, W_h·, b_·, row-vector convention) ↔ a layer's PyTorch
tensors, for any cell, from its spec's gate order and names.

PyTorch keeps two biases (b_ih, b_hh) per gate; where they are simply added the textbook view
merges them into the book's one bias (b = b_ih + b_hh). A gate in ``spec.own_hidden_bias`` (the
PyTorch GRU candidate: R_t multiplies its b_hh) shows b_hh as its own ``b_hh``. A layer without
``bias_hh_l0`` (the book's GRU) has the one bias only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import CellSpec


def _blocks(spec: CellSpec, H: int):
    """(gate, rows, (W_x·, W_h·, b_·)) per gate block, in PyTorch's row order."""
    return [(g, slice(k * H, (k + 1) * H), spec.names[g]) for k, g in enumerate(spec.gates)]


def textbook_params(spec: CellSpec, mod: nn.Module, H: int) -> dict[str, Tensor]:
    """The layer's parameters under the book's names, as detached copies: W_x· (d × h),
    W_h· (h × h), b_· (h,), plus ``b_hh`` for a gate whose hidden bias cannot merge."""
    w_ih, w_hh = mod.weight_ih_l0.detach(), mod.weight_hh_l0.detach()
    b_ih = mod.bias_ih_l0.detach()
    b_hh = mod.bias_hh_l0.detach() if hasattr(mod, "bias_hh_l0") else None
    out: dict[str, Tensor] = {}
    for gate, rows, (wx, wh, b) in _blocks(spec, H):
        out[wx] = w_ih[rows].T.clone()
        out[wh] = w_hh[rows].T.clone()
        if b_hh is None:
            out[b] = b_ih[rows].clone()
        elif gate in spec.own_hidden_bias:
            out[b] = b_ih[rows].clone()
            out["b_hh"] = b_hh[rows].clone()
        else:
            out[b] = (b_ih[rows] + b_hh[rows]).clone()
    return out


@torch.no_grad()
def set_textbook_params(spec: CellSpec, mod: nn.Module, H: int, params: dict[str, Tensor]) -> None:
    """Inverse of :func:`textbook_params`: merged biases go to b_ih and their b_hh becomes 0;
    names missing from ``params`` are left as they are."""
    has_hh = hasattr(mod, "bias_hh_l0")
    for gate, rows, (wx, wh, b) in _blocks(spec, H):
        if wx in params:
            mod.weight_ih_l0[rows] = params[wx].T
        if wh in params:
            mod.weight_hh_l0[rows] = params[wh].T
        own = gate in spec.own_hidden_bias
        if b in params:
            mod.bias_ih_l0[rows] = params[b]
            if has_hh and not own:
                mod.bias_hh_l0[rows] = 0.0
        if has_hh and own and "b_hh" in params:
            mod.bias_hh_l0[rows] = params["b_hh"]


def run_layer(mod: nn.Module, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one layer module over inp (T, [B,] d) from h0, c0 ([B,] h) (c0 None unless the cell has
    a memory cell). Returns (out (T, [B,] h), H_T, C_T or None) with H_T, C_T shaped like h0."""
    if c0 is not None:
        out, (hn, cn) = mod(inp, (h0.unsqueeze(0), c0.unsqueeze(0)))
        return out, hn[0], cn[0]
    out, hn = mod(inp, h0.unsqueeze(0))
    return out, hn[0], None
