"""Per-layer terms of the backward pass: each cell's :class:`~rnnviz.cells.LayerJacobian`
(coefficients and steps, in rnnviz.cells), built from a trace."""

from __future__ import annotations

from ..cells import LayerJacobian
from ..model import CharRNN
from ..trace import Trace
from ..names import act_name

#: The old name of a layer's backward terms (now the cell's LayerJacobian subclass).
_Layer = LayerJacobian


def _layer_terms(model: CharRNN, tr: Trace, l: int) -> LayerJacobian:
    """Layer l's backward coefficients from the trace ``tr`` of ``model`` (row-vector convention)."""
    H = tr[act_name(l, "h")]
    x = model.one_hot(tr.ids).to(H.dtype) if l == 0 else tr[act_name(l - 1, "h")]
    terms = {term: tr[act_name(l, term)] for term in model.spec.terms}
    return model.spec.jacobian.build(model.config.cell, model.layers[l], terms, x)
