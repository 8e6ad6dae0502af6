"""Activation names (rnnviz.names): one builder, one parser, every trace name round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnviz import CELLS, trace
from rnnviz.names import act_name, layer_of, parse_act_name
from tests.conftest import SMALL_TEXT, tiny_model


@pytest.mark.parametrize("layer,state,name", [
    (0, "h", "layer0.h"), (1, "c", "layer1.c"), (2, "gates.f", "layer2.gates.f"),
    (10, "candidate", "layer10.candidate"), (np.int64(3), "h", "layer3.h"), (torch.tensor(4), "h", "layer4.h"),
])
def test_round_trip(layer, state, name):
    assert act_name(layer, state) == name
    assert parse_act_name(name) == (int(layer), state) and layer_of(name) == int(layer)


@pytest.mark.parametrize("layer,state", [
    (-1, "h"), (1.0, "h"), (True, "h"), ("0", "h"), (None, "h"),
    (0, ""), (0, "H"), (0, "gates..f"), (0, "gates.f.x"), (0, ".h"), (0, "h "), (0, None),
])
def test_act_name_refuses_bad_parts(layer, state):
    with pytest.raises(ValueError):
        act_name(layer, state)


@pytest.mark.parametrize("name", [
    "probs", "layer.h", "layer0", "layer0.", "layer-1.h", "layer01.h", "layer0.h[3]", "Layer0.h",
    "layer0.gates.f.x", " layer0.h", "layer0.h\n", "layer١.h", "", None, 3,
])
def test_parse_refuses_what_act_name_never_builds(name):
    with pytest.raises(ValueError):
        parse_act_name(name)
    assert layer_of(name) is None


@pytest.mark.parametrize("cell", CELLS)
def test_every_trace_name_of_a_layer_parses(cell):
    tr = trace(tiny_model(cell, 2), SMALL_TEXT)
    layered = [n for n in tr.names() if layer_of(n) is not None]
    assert {parse_act_name(n)[0] for n in layered} == {0, 1}
    for n in layered:
        assert act_name(*parse_act_name(n)) == n
    assert tr.state_names(1) == [n for n in layered if n.startswith("layer1.")]
