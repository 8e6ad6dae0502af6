"""One spec per recurrent cell (:class:`CellSpec`): every other module asks :func:`spec` instead of
branching on the cell's name.

Cells: ``rnn_tanh``, ``rnn_relu`` (:mod:`.rnn`), ``gru`` (PyTorch's form, :mod:`.gru`), ``lstm``
(:mod:`.lstm`), ``gru_d2l`` (the book's GRU, :mod:`.gru_d2l`). Every module of this package that
defines ``SPECS`` (a tuple of :class:`CellSpec`) is a cell module: a new cell is a new file here,
nothing else in the package is edited (docs/ARCHITECTURE.md, "A new cell"). A spec gives the textbook names,
PyTorch gate order, one step with named terms, gate recovery from a fused forward, the layer
module, the backward coefficients (:mod:`.jacobian`) and what the step-through view shows.
Textbook parameter names ↔ PyTorch tensors: :mod:`.params`.

Term names (the suffixes of trace names ``layer{l}.<term>``): ``h`` (H_t), ``c`` (LSTM C_t),
``gates.i/f/o`` (LSTM), ``gates.r/z`` (GRU), ``candidate`` (LSTM C̃_t, GRU H̃_t).

Shared helpers: :func:`input_part` (a layer's input products for all steps) and
:func:`linear_recurrence` (the elementwise scan of the LSTM's memory cell).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import CellSpec, Edit, StepFn, input_part, keep, linear_recurrence
from .jacobian import LayerJacobian


def _collect() -> dict[str, CellSpec]:
    """The specs of every cell module of this package, ordered by ``CellSpec.order`` (then name)."""
    found: list[CellSpec] = []
    for info in pkgutil.iter_modules(__path__):
        found += getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPECS", ())
    names = [s.name for s in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RuntimeError(f"cell names declared twice in rnnviz/cells: {dup}")
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


#: Cell name → its spec, in the order pages list them.
SPECS: dict[str, CellSpec] = _collect()
#: Every cell name a ModelConfig accepts.
CELLS: tuple[str, ...] = tuple(SPECS)


def spec(cell: str) -> CellSpec:
    """The spec of ``cell``; ValueError for an unknown name."""
    try:
        return SPECS[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; expected one of {CELLS}") from None


__all__ = ["CELLS", "CellSpec", "Edit", "LayerJacobian", "SPECS", "StepFn", "input_part", "keep",
           "linear_recurrence", "spec"]
