"""#28 "follow one unit everywhere": a unit pinned in Hidden states (URL ``unit=L0 h[3]``) is
highlighted there, preselected, kept across views and shown first in Step-through; a link naming
a unit the model lacks is dropped with a note."""

from __future__ import annotations

import json

from app_pages.ui.pin import parse_unit, unit_in
from tests.conftest import chart_specs, tiny_model

from .test_app_units import app_env, run_tab  # noqa: F401
from .test_app_views import app, ckpt_dir, open_view  # noqa: F401


def test_parse_unit_validates_against_the_model():
    m = tiny_model("lstm", 2, 8)
    assert parse_unit("L1 c[7]", m) == (1, "c", 7)
    for bad in ("L2 h[0]", "L0 h[8]", "L0 x[1]", "L00 h[1]", "u3", "L0 h[-1]", None):
        assert parse_unit(bad, m) is None


def _chart(at, key):
    return next(c for c in chart_specs(at) if c["layout"].get("meta", {}).get("chart") == key)


def test_pin_in_hidden_states_is_followed_by_step_through(app):
    at = open_view(app, text="the time machine by h g wells")
    at.button(key="hs_pin").click().run()
    pinned = at.query_params["unit"]
    pinned = pinned[0] if isinstance(pinned, list) else pinned
    index = int(pinned.split("[")[1].rstrip("]"))
    assert at.selectbox(key="hs_unit").value == index
    heat = _chart(at, "hs_heatmap")
    assert any("★ pinned" in t and pinned in t for t in heat["layout"]["yaxis"]["ticktext"])
    at.switch_page("app_pages/step_through.py")
    at.run()
    assert not at.exception
    assert at.query_params["unit"] in (pinned, [pinned])
    terms = _chart(at, "st_terms")
    layer0 = pinned.startswith("L0 h[")
    assert not layer0 or terms["data"][0]["y"][0] == pinned
    assert not layer0 or terms["layout"]["yaxis"]["ticktext"][0] == f"★ {pinned}"      # marked too


def test_a_link_to_a_missing_unit_is_dropped_with_a_note(app):
    at = open_view(app, text="the time machine", unit="L9 h[0]")
    assert "unit" not in at.query_params
    line = next(c.value for c in at.caption if "Ignored from the link" in c.value)     # the one validation layer
    assert "unit=L9 h" in line and "must be a unit of this model (L0…L" in line, line


def test_lecture_mode_opens_hidden_states_on_32_labelled_rows(app):
    import torch
    from rnnviz import views
    order = list(range(256))[::-1]
    var = torch.arange(256, dtype=torch.float64)
    rows = views.heatmap_rows(order, "top", var, [3])
    assert len(rows) == 32 and 3 in rows and rows == [u for u in order if u in set(rows)]
    assert views.heatmap_rows(order, "named", var, [7, 3]) == [7, 3]
    assert views.heatmap_rows(order, "all", var, []) == order
    at = open_view(app, text="the time machine by h g wells " * 3, lecture="1")
    assert at.selectbox(key="hs_rows").value == "top"
    heat = _chart(at, "hs_heatmap")
    y = heat["data"][0]["y"]
    assert len(y) <= 32 and len(heat["layout"]["yaxis"]["tickvals"]) == len(y)    # every row labelled


# ---------------------------------------------------------------- clicks pin (#28 follow one unit)
def _head(at, key):
    """The head of an in-place chart's payload (plotly_component.payload): what the page sends."""
    from tests.conftest import read_payload
    for el in at.main:
        if el.type == "bidi_component" and el.proto.component_name == "rnnviz_plotly_inplace":
            head, spec = read_payload(el.proto.bytes)
            if json.loads(spec)["layout"].get("meta", {}).get("chart") == key:
                return head
    raise AssertionError(f"no chart {key}")


def test_a_click_on_a_units_row_names_that_unit():
    assert unit_in({"x": "12:e", "y": "L1 c[30]"}) == "L1 c[30]"          # a heatmap cell
    assert unit_in({"x": "0.71", "y": "L0 h[203]"}) == "L0 h[203]"        # a Units bar
    assert unit_in({"x": "H_t", "y": "step 3"}) is None                   # not a unit's row
    assert unit_in({"x": "L0 h[5]", "y": "0.3"}) == "L0 h[5]"


def test_a_selected_table_row_or_clicked_point_pins_its_unit():
    """The callbacks themselves (Streamlit's bare mode: its session state and link outside a run)."""
    import streamlit as st

    from app_pages.ui.pin import URL_KEY, pin_point, pin_row
    try:
        st.session_state["t_rows"] = {"selection": {"rows": [1], "columns": []}}
        pin_row("t_rows", ["L0 h[1]", "L1 c[7]"])
        assert st.query_params.get(URL_KEY) == "L1 c[7]"
        pin_point({"x": "3:a", "y": "step 3"})                  # not a unit's row: nothing changes
        assert st.query_params.get(URL_KEY) == "L1 c[7]"
        pin_point({"x": "3:a", "y": "L0 h[12]"})
        assert st.query_params.get(URL_KEY) == "L0 h[12]"
    finally:
        st.session_state.pop("t_rows", None)
        st.session_state.pop("pinned_unit", None)
        st.query_params.pop(URL_KEY, None)


def test_unit_charts_send_clicks_and_others_do_not(app):
    at = open_view(app, text="the time machine by h g wells")
    assert _head(at, "hs_heatmap")["clicks"] is True and _head(at, "hs_layers")["clicks"] is True
    at.switch_page("app_pages/step_through.py")
    at.run()
    assert _head(at, "st_terms")["clicks"] is True and _head(at, "st_softmax")["clicks"] is False


def test_units_bars_and_rows_pin(app_env):                      # noqa: F811
    at = run_tab("Unit finder")
    assert _head(at, "u_rank")["clicks"] is True
    ranked = [t for t in at.dataframe if t.proto.id.endswith("u_rank_rows")]
    assert ranked and list(ranked[0].proto.selection_mode)      # the ranked table selects a row


def test_units_opens_on_the_pinned_unit(app, ckpt_dir):
    import rnnviz
    text = "the time machine by h g wells"
    at = open_view(app, "app_pages/units.py", text=text, unit="L1 c[5]", units__tab="Ablation")
    assert not at.exception
    assert any("Pinned unit L1 c[5]" in m.value for m in at.markdown)
    panel = [el.proto.body for el in at.get("html") if "L1 c[5] = " in el.proto.body]
    assert panel                                   # the unit's activation on the sidebar text
    assert (at.selectbox(key="u_layer").value, at.selectbox(key="u_kind").value,
            at.number_input(key="u_unit").value) == (1, "c", 5)
    tr = rnnviz.trace(rnnviz.load_model(str(ckpt_dir / "timemachine-lstm.safetensors")), text)
    peak = int(tr["layer1.c"][:, 5].abs().argmax())
    assert f"step {peak}: " in panel[0] and f"{float(tr['layer1.c'][peak, 5]):+.4f}" in panel[0]


def test_compare_draws_the_pinned_unit_where_it_exists(app, ckpt_dir):
    import rnnviz
    text = "the time machine by h g wells"
    at = open_view(app, "app_pages/compare.py", text=text, unit="L1 c[3]",
                   cmp__models="timemachine-lstm,timemachine-gru")
    fig = _chart(at, "cmp_pinned")
    tr = rnnviz.trace(rnnviz.load_model(str(ckpt_dir / "timemachine-lstm.safetensors")), text)
    assert [d["name"] for d in fig["data"]] == ["timemachine-lstm"]
    import numpy as np
    assert np.allclose(fig["data"][0]["y"], tr["layer1.c"][:, 3].numpy(), atol=1e-5)
    assert any("timemachine-gru has 1 layer" in i.value for i in at.info)


def test_the_verdict_table_names_units_by_their_one_name():
    import pandas as pd

    from app_pages.ui.scorecard import verdict_rows
    df = pd.DataFrame({"layer": [1, 0], "state": ["c", "h"], "unit": [30, 7], "verdict": ["causal", "chance"],
                       "effect": [0.5, 0.1], "kind": ["auc", "auc"], "stat": [0.9, 0.5],
                       "random_init_p95": [0.6, 0.6], "p_value": [1e-9, 0.5], "delta_loss": [0.1, None],
                       "delta_loss_elsewhere": [0.01, None], "random_delta_z": [3.0, None]})
    rows = verdict_rows(df)
    assert list(rows["unit"]) == ["L1 c[30]", "L0 h[7]"]         # as Hidden states and the URL
    # L0 h[7] was not ablated (no Δloss): a dash, not "None" / "nan"
    assert list(rows["Δloss on"]) == ["0.1000", "—"] and list(rows["z"]) == ["3.0", "—"]
    assert list(rows["Δloss elsewhere"]) == ["0.0100", "—"]


# ---------------------------------------------------------------- a feature is pinned like a unit (#29)
def test_parse_pin_takes_a_unit_or_a_feature_of_a_shipped_sae():
    from app_pages.ui.pin import Pin, parse_pin
    m = tiny_model("lstm", 2, 8)
    saes = {(0, "h"): 12, (1, "c"): 4}              # (layer, state) → features of its SAE
    assert parse_pin("L1 c[7]", m, saes) == Pin(1, "c", 7) and Pin(1, "c", 7).unit == (1, "c", 7)
    assert parse_pin("L0 feat[11]", m, saes) == Pin(0, "h", 11, feature=True)
    assert parse_pin("L1 featc[3]", m, saes) == Pin(1, "c", 3, feature=True)
    assert Pin(1, "c", 3, feature=True).name == "L1 featc[3]" and Pin(1, "c", 3, feature=True).unit is None
    # the old form of a feature link ("f", "fc": read as a gate's unit) still pins the feature
    assert parse_pin("L0 f[11]", m, saes) == Pin(0, "h", 11, feature=True)
    assert parse_pin("L1 fc[3]", m, saes).name == "L1 featc[3]"
    for bad in ("L0 feat[12]", "L0 featc[0]", "L1 feat[0]", "L0 feath[1]", "L0 feat[-1]", "L00 feat[1]",
                "L0 feat[１]", "L0 feat[" + "9" * 40 + "]", "L0 feat[1] L0 feat[2]", "x" * 100_000, ["L0 feat[1]"],
                "L0 f[12]", "L0 fc[0]", "L1 f[0]", "L0 fh[1]", "L0 f[-1]", "L0 f[1] L0 f[2]", "L0 fe[1]"):
        assert parse_pin(bad, m, saes) is None, bad
    assert parse_pin("L0 feat[0]", m) is None and parse_pin("L0 f[0]", m) is None   # no SAE: no feature pins
    assert Pin(0, "h", 5).on(0, "h") == 5 and Pin(0, "h", 5, feature=True).on(0, "h") is None


def test_a_click_on_a_feature_row_pins_the_feature():
    import streamlit as st

    from app_pages.ui.pin import URL_KEY, Pin, pin_point, pinned_any
    assert unit_in({"x": "3:a", "y": "L0 feat[17]"}) == "L0 feat[17]"
    assert unit_in({"x": "3:a", "y": "L0 featc[2] · vowel · causal"}) == "L0 featc[2]"
    try:
        pin_point({"x": "3:a", "y": "L0 featc[17]"})
        assert st.query_params.get(URL_KEY) == "L0 featc[17]"
        assert pinned_any() == Pin(0, "c", 17, feature=True)
        pin_point({"x": "3:a", "y": "L1 h[2]"})
        assert pinned_any() == Pin(1, "h", 2)
    finally:
        st.session_state.pop("pinned_unit", None)
        st.query_params.pop(URL_KEY, None)
