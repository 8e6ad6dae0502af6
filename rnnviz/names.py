"""Activation names: one layer's recorded state is called ``layer{l}.{state}``.

``state`` is a term of the cell (:attr:`rnnviz.cells.CellSpec.terms`): ``h`` (H_t), ``c`` (the LSTM's
C_t), ``gates.i`` / ``gates.f`` / ``gates.o`` (LSTM), ``gates.r`` / ``gates.z`` (GRU) or
``candidate`` (C̃_t, H̃_t). Every name of a :class:`rnnviz.Trace`, of a hook and of a unit's tensor
is built by :func:`act_name` and read back by :func:`parse_act_name`::

    act_name(0, "h")                # "layer0.h"
    act_name(1, "gates.f")          # "layer1.gates.f"
    parse_act_name("layer1.gates.f")   # (1, "gates.f")
"""

from __future__ import annotations

import operator
import re

#: What a state may look like: lower-case words, at most one dot ("h", "gates.f", "candidate").
_STATE = re.compile(r"[a-z]+(?:\.[a-z]+)?")
#: A whole name: "layer", a layer number without leading zeros, ".", a state.
_NAME = re.compile(r"layer(0|[1-9][0-9]*)\.([a-z]+(?:\.[a-z]+)?)")


def act_name(layer: int, state: str) -> str:
    """The activation name of ``state`` in layer ``layer`` (≥ 0), e.g. ``act_name(0, "h")`` →
    ``"layer0.h"``. ``layer`` may be any integer type (int, numpy, torch). ValueError for a
    negative or non-integer layer or a malformed state."""
    try:
        index = operator.index(layer)
    except TypeError:
        index = -1
    if isinstance(layer, bool) or index < 0:
        raise ValueError(f"a layer index is a whole number ≥ 0, got {layer!r}")
    if not isinstance(state, str) or not _STATE.fullmatch(state):
        raise ValueError(f"a state is a cell term such as 'h', 'c' or 'gates.f', got {state!r}")
    return f"layer{index}.{state}"


def parse_act_name(name: str) -> tuple[int, str]:
    """``(layer, state)`` of an activation name: ``"layer1.gates.f"`` → ``(1, "gates.f")``.
    ValueError for anything :func:`act_name` does not produce."""
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"not an activation name (layer<l>.<state>, e.g. 'layer0.h'): {name!r}")
    return int(m.group(1)), m.group(2)


def layer_of(name: str) -> int | None:
    """The layer of an activation name, or None when ``name`` is not one (e.g. ``"probs"``)."""
    try:
        return parse_act_name(name)[0]
    except ValueError:
        return None
