"""#28 item 10: one name for a unit on every view — "L0 h[203]" (rnnviz.units.names.unit_name) on
Hidden states' heatmap and unit picker, the Units table and chart, Step-through and Compare."""

from __future__ import annotations

import numpy as np

from rnnviz.compare import compare
from rnnviz.plots import compare as PC
from rnnviz.plots import states as PS
from rnnviz.plots import stepthrough as PST
from rnnviz.plots import units as PU
from rnnviz import units as U
from rnnviz.units import UnitRef
from rnnviz.units.names import state_of, unit_name
from tests.conftest import SMALL_TEXT, tiny_model


def test_the_one_formatter():
    assert unit_name(0, "h", 203) == "L0 h[203]"
    assert unit_name(1, "c", 7) == "L1 c[7]" and unit_name(0, "gates.f", 2) == "L0 f[2]"
    assert state_of("layer1.c") == (1, "c") and state_of("layer0.gates.f") == (0, "f")
    assert UnitRef(1, "c", 7).label == "L1 c[7]"


def test_every_view_names_a_unit_the_same_way():
    want = unit_name(1, "h", 5)
    heat = PS.state_heatmap(np.zeros((4, 8)), list("abcd"), units=[5, 2], layer=1, kind="h")
    assert heat.data[0].y[0] == want and want in heat.layout.yaxis.tickvals
    terms = PST.terms_figure({"H_t": np.arange(8.0)}, [5, 2], layer=1)
    assert terms.data[0].y[0] == want
    cmp = compare(SMALL_TEXT[:30], {"a": tiny_model("lstm", 2)})
    fig = PC.hidden_small_multiples(cmp, width=30)          # the top layer: layer 1's h
    assert all(y.startswith("L1 h[") for y in fig.data[0].y)

    model = tiny_model("lstm", 2)
    res = U.rank_units(U.build_index(model, SMALL_TEXT * 5), "whitespace", top=5)
    top = res.top[0].unit
    name = unit_name(top.layer, top.kind, top.unit)
    assert PU.ranked_units_rows(res)[0]["unit"] == name               # the Units table
    assert name in PU.ranked_units_figure(res).data[0].y                # the Units chart
