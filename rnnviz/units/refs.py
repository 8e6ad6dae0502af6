"""Units and their column order: :class:`UnitRef`, :func:`unit_refs`, :func:`activation_matrix`,
the weights' fingerprint, and :class:`UnitsError` (see :mod:`rnnviz.units`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells import spec
from ..model import CharRNN
from ..ref import model_ref
from ..trace import Trace
from ..names import act_name
from .names import unit_name


class UnitsError(ValueError):
    """A unit query cannot be answered (bad span, constant feature, …); the message says why."""


@dataclass(frozen=True, order=True)
class UnitRef:
    """One hidden unit: ``layer``, ``kind`` ("h" or "c") and index ``unit``."""

    layer: int
    kind: str
    unit: int

    @property
    def name(self) -> str:
        return f"{self.tensor_name}[{self.unit}]"

    @property
    def tensor_name(self) -> str:
        """The trace name of the (T, h) tensor holding this unit, e.g. ``layer0.c``."""
        return act_name(self.layer, self.kind)

    @property
    def label(self) -> str:
        """The unit's name on the page (:func:`rnnviz.units.names.unit_name`)."""
        return unit_name(self.layer, self.kind, self.unit)


def unit_kinds(model: CharRNN) -> tuple[str, ...]:
    return model.spec.state_kinds


def unit_refs(model: CharRNN) -> list[UnitRef]:
    """Every unit of the model, in column order: per layer, h[0…h-1] then (LSTM) c[0…h-1]."""
    H = model.config.hidden_size
    return [UnitRef(layer, kind, j) for layer in range(model.config.num_layers)
            for kind in unit_kinds(model) for j in range(H)]


def activation_matrix(tr: Trace, units: list[UnitRef] | None = None) -> Tensor:
    """(T, U) activations of ``units`` (default: all h and c of every layer, in column order)."""
    if units is None:
        kinds = spec(tr.cell).state_kinds
        return torch.cat([tr[act_name(l, k)] for l in range(tr.num_layers) for k in kinds], dim=1)
    return torch.stack([tr[u.tensor_name][:, u.unit] for u in units], dim=1)


def model_fingerprint(model: CharRNN) -> str:
    """The weights' digest of ``model``: ``rnnviz.ref.model_ref(model).digest`` (one identity for
    every cache; computed once per model object)."""
    return model_ref(model).digest
