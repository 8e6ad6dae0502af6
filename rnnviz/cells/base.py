"""What a cell spec is (:class:`CellSpec`) and the maths every cell shares.

A spec holds everything rnnviz needs to know about one recurrent cell: its textbook names, its
PyTorch gate order, one step of it with named terms, gate recovery from a fused run, the Jacobian
coefficients of its backward pass, and the module that runs a whole layer. Shapes: h hidden size,
G gate blocks (1, 3 or 4), d the layer's input size, T steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

#: ``edit(term, value) -> value``: sees every term of a step; returns the value the step goes on with.
Edit = Callable[[str, Tensor], Tensor]
#: ``step(layer, x_part_t, h_prev, c_prev, edit) -> {term: value}`` (see :class:`CellSpec`).
StepFn = Callable[[nn.Module, Tensor, Tensor, "Tensor | None", Edit], dict[str, Tensor]]
#: ``recover(layer, inp, ids, out, h0, c0) -> {term: (T, h)}`` (see :class:`CellSpec`).
RecoverFn = Callable[..., dict[str, Tensor]]


def keep(term: str, value: Tensor) -> Tensor:
    """The ``edit`` that changes nothing."""
    return value


def input_part(layer: nn.Module, inp: Tensor) -> Tensor:
    """X W_ih^T + b_ih for inputs (T, d) → (T, G·h), in the cell's PyTorch gate order."""
    return input_rows(layer.weight_ih_l0, layer.bias_ih_l0, None, inp)


def input_rows(w_ih: Tensor, bias: Tensor, ids: Tensor | None, inp: Tensor) -> Tensor:
    """X W_ih^T + bias (T, G·h) for inputs (T, d); with one-hot inputs given as ``ids`` (T,), the
    rows of the small (|V|, G·h) table are picked instead of multiplied (the table is made
    row-major first: gathering rows of the transposed view is ~4× slower)."""
    if ids is None:
        return torch.addmm(bias, inp, w_ih.T)
    return torch.index_select(torch.add(w_ih, bias[:, None]).T.contiguous(), 0, ids)


def hidden_part(layer: nn.Module, h_prev: Tensor) -> Tensor:
    """H_{t-1} W_hh^T + b_hh, (G·h,) for h_prev (h,); (B, G·h) for (B, h)."""
    if h_prev.dim() == 1:
        return torch.addmv(layer.bias_hh_l0, layer.weight_hh_l0, h_prev)
    return torch.addmm(layer.bias_hh_l0, h_prev, layer.weight_hh_l0.T)


@dataclass(frozen=True)
class CellSpec:
    """One recurrent cell, described once.

    name: the config name (``ModelConfig.cell``). title: how pages name it.
    gates: gate blocks in PyTorch's row order inside weight_ih / weight_hh / biases (a plain RNN
        has one block, ``"h"``). names: gate → textbook (input weight, hidden weight, bias) names.
    own_hidden_bias: gates whose b_hh cannot merge into the book's one bias (PyTorch's GRU
        candidate: R_t multiplies it); shown as ``b_hh``.
    terms: the per-step trace terms, ``h`` first (``c``: LSTM C_t; ``gates.<g>``; ``candidate``).
    step: one step ``step(layer, x_part_t, h_prev, c_prev, edit)`` → {term: value}; x_part_t is
        a row of :func:`input_part`; each term passes through ``edit(term, value)`` right after it
        is computed and what ``edit`` returns is what the rest of the step uses (trace hooks).
        Shapes (h,) (or (B, h) where the cell's own layer module steps batches).
    recover: every gate, candidate and C_t of a whole fused run (the modules give H_t only) from
        one batched matmul, ``recover(layer, inp (T, d), ids (T,) | None, out (T, h), h0, c0)``;
        None when there is nothing to recover (plain RNN).
    make_layer: ``make_layer(d, h)`` → the one-layer module that runs a whole sequence,
        ``layer(inp (T, [B,] d), hx) → (out, hn)`` with nn.RNN/GRU/LSTM's conventions.
    jacobian: the class holding a layer's backward coefficients (a subclass of
        :class:`rnnviz.cells.jacobian.LayerJacobian`, in the cell's module).
    torch_class / torch_kwargs: the multi-layer PyTorch module whose state_dicts rnnviz.convert
        reads; None for a cell PyTorch does not have.
    gate_view: the gates pages show (trace names ``gates.<g>``), in display order.
    step_view: the names :func:`rnnviz.views.step_terms` returns, in order.
    map_cost: (h × h) products per step and layer of the gradient map (cost estimate).
    spectrum_blocks / main_block: the hidden-to-hidden blocks the spectrum view offers.
    derivative_note: what bounds φ′ (plain RNNs, for the gradient page's reading).
    step_jacobian: the one-step Jacobian ∂H_t/∂H_{t−1} in d2l names (Markdown), for the gradient
        page's introduction.
    latex / note: the cell's equations as LaTeX lines and a caption, for the step-through page.
    order: where pages list the cell (ascending; ties by name).
    """

    name: str
    title: str
    gates: tuple[str, ...]
    names: dict[str, tuple[str, str, str]]
    terms: tuple[str, ...]
    step: StepFn
    recover: RecoverFn | None
    make_layer: Callable[[int, int], nn.Module]
    jacobian: type
    step_view: tuple[str, ...]
    step_terms: Callable[..., dict[str, Tensor]]
    gate_view: tuple[str, ...] = ()
    own_hidden_bias: tuple[str, ...] = ()
    torch_class: type | None = None
    torch_kwargs: dict = field(default_factory=dict)
    map_cost: int = 1
    spectrum_blocks: tuple[str, ...] = ()
    main_block: str = "W_hh"
    derivative_note: str = ""
    step_jacobian: str = ""
    latex: tuple[str, ...] = ()
    note: str = ""
    order: int = 100

    @property
    def has_cell_state(self) -> bool:
        """Whether the cell carries a memory cell C_t besides H_t (the LSTM)."""
        return "c" in self.terms

    @property
    def state_kinds(self) -> tuple[str, ...]:
        """The per-unit states of a layer: ("h",) or ("h", "c")."""
        return ("h", "c") if self.has_cell_state else ("h",)

    @property
    def is_vanilla(self) -> bool:
        """A plain RNN (one block, no gates): what the activation what-if applies to."""
        return self.gates == ("h",)


def linear_recurrence(f: Tensor, u: Tensor, c0: Tensor) -> Tensor:
    """All C_t of C_t = f_t ⊙ C_{t-1} + u_t, for f, u of shape (T, h) and C_{-1} = c0 (h,).

    Two-level scan with no division (so no blow-up when a gate is 0): the steps are cut into
    ~√T chunks; pass 1 runs the recurrence inside every chunk at once from a zero state, also
    keeping the running product of f; pass 2 carries each chunk's end state into the next, and
    C = local + running_product ⊙ carry. About 2√T small vectorised steps instead of T.
    Returns (T, h); equal to the plain loop up to float rounding.
    """
    T, H = u.shape
    K = max(1, math.isqrt(T))
    n = -(-T // K)
    pad = n * K - T
    if pad:
        f = torch.cat([f, f.new_ones(pad, H)])
        u = torch.cat([u, u.new_zeros(pad, H)])
    fc, uc = f.view(n, K, H), u.view(n, K, H)
    local = torch.empty_like(uc)
    prod = torch.empty_like(fc)
    local[:, 0], prod[:, 0] = uc[:, 0], fc[:, 0]
    for k in range(1, K):   # pass 1: every chunk at once, from a zero state
        torch.addcmul(uc[:, k], fc[:, k], local[:, k - 1], out=local[:, k])
        torch.mul(prod[:, k - 1], fc[:, k], out=prod[:, k])
    carry = torch.empty(n, H, dtype=u.dtype)
    prev = c0
    for m in range(n):      # pass 2: the state entering chunk m
        carry[m] = prev
        prev = torch.addcmul(local[m, -1], prod[m, -1], prev)
    c = torch.addcmul(local, prod, carry[:, None, :])
    return c.reshape(n * K, H)[:T]
