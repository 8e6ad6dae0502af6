"""All layers on one time axis: one block per state, shared characters, the data as traced."""

from __future__ import annotations

import numpy as np
import pytest

import rnnviz
from rnnviz.plots.layers import Block, stacked_layers_figure
from tests.conftest import SMALL_TEXT, tiny_model


def test_blocks_stack_every_layer_and_cell_state_on_one_axis():
    model = tiny_model("lstm", 3, hidden=6)
    tr = rnnviz.trace(model, SMALL_TEXT)
    blocks = [Block(f"layer {l} · {k.upper()}_t", tr[f"layer{l}.{k}"][5:25], list(range(5, -1, -1)),
                    k.upper()) for l in (2, 1, 0) for k in ("h", "c")]
    fig = stacked_layers_figure(blocks, tr.chars[5:25], start=5)
    heat = [d for d in fig.data if d.type == "heatmap"]
    assert len(heat) == 6 and [d.name for d in heat] == [b.label for b in blocks]
    np.testing.assert_allclose(np.asarray(heat[0].z), tr["layer2.h"][5:25].numpy()[:, ::-1].T, rtol=1e-6)
    assert list(heat[5].x) == list(heat[0].x) and heat[0].x[0].startswith("5:")
    assert [a.text for a in fig.layout.annotations] == [b.label for b in blocks]
    assert heat[1].zmax == pytest.approx(float(tr["layer2.c"][5:25].abs().max()), rel=1e-6)


def test_a_block_of_the_wrong_length_is_refused():
    tr = rnnviz.trace(tiny_model("gru", 2), SMALL_TEXT)
    with pytest.raises(ValueError, match="layer 1"):
        stacked_layers_figure([Block("layer 1", tr["layer1.h"][:4])], tr.chars[:5])


def test_units_carry_their_one_name():
    from rnnviz.units.names import unit_name
    tr = rnnviz.trace(tiny_model("lstm", 2, hidden=4), SMALL_TEXT)
    fig = stacked_layers_figure([Block("layer 1 · C_t", tr["layer1.c"][:6], [3, 0], "C", 1, "c")],
                                tr.chars[:6])
    assert list(fig.data[0].y) == [unit_name(1, "c", 3), unit_name(1, "c", 0)]
