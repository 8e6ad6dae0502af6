"""#28 "follow one unit everywhere": a unit pinned in Hidden states (URL ``unit=L0 h[3]``) is
highlighted there, preselected, kept across views and shown first in Step-through; a link naming
a unit the model lacks is dropped with a note."""

from __future__ import annotations

from app_pages.ui.pin import parse_unit
from tests.conftest import chart_specs, tiny_model

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


def test_a_link_to_a_missing_unit_is_dropped_with_a_note(app):
    at = open_view(app, text="the time machine", unit="L9 h[0]")
    assert "unit" not in at.query_params
    assert any("not a unit of this model" in c.value for c in at.caption)


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
