"""Issue 16 (teaching-first): chart layout and shared colour / axis choices, on the figure dicts."""

from __future__ import annotations

import math

import numpy as np

from rnnviz.gradients import WhatIf, gradient_map, jacobian_chain, norm_curve
from rnnviz.plots import common
from rnnviz.plots import compare as PC
from rnnviz.plots import gradients as PG
from tests.conftest import SMALL_TEXT, tiny_model


def _log_ticks_are_powers_of_ten(axis) -> bool:
    return (axis.type == "log" and axis.tickmode == "array"
            and 1 <= len(axis.tickvals) <= common.MAX_LOG_TICKS == 8)


# ------------------------------------------------------------------ item 8: one style, one meaning
def test_every_log_axis_uses_powers_of_ten():
    model = tiny_model("lstm", 1)
    assert _log_ticks_are_powers_of_ten(PG.norm_curve_figure(norm_curve(model, SMALL_TEXT)).layout.yaxis)
    assert _log_ticks_are_powers_of_ten(PG.jacobian_chain_figure(jacobian_chain(model, SMALL_TEXT)).layout.yaxis)
    curves = PC.gradient_curves({"a": (np.arange(1, 5), np.array([1e-3, 1e-6, 1e-9, 1e-12]))})
    assert _log_ticks_are_powers_of_ten(curves.layout.yaxis)
    assert len(common.log_axis(log10_range=(-40, 0))["tickvals"]) <= 8      # thinned (tests/test_log_axes.py)


def test_surprisal_and_probability_never_share_a_scale():
    assert common.PROBABILITY == common.SEQUENTIAL        # yellow = likely, everywhere
    assert common.SURPRISAL != common.PROBABILITY


# ------------------------------------------------------------------ item 7: gradient chart clutter
def _legend_clear_of_title(fig) -> bool:
    """The legend sits under the plot (container bottom), never above it where the title is."""
    lg = fig.layout.legend
    return lg.yref == "container" and lg.yanchor == "bottom" and lg.y == 0


def test_truncation_and_clipping_legend_below_and_zero_markers_at_the_bottom():
    tanh = tiny_model("rnn_tanh", 1)
    nc = norm_curve(tanh, SMALL_TEXT, whatif=WhatIf(truncate=4, clip_norm=1e-3))
    fig = PG.norm_curve_figure(nc)
    assert _legend_clear_of_title(fig)
    lo, hi = fig.layout.yaxis.range                      # log10 units
    zeros = [d for d in fig.data if d.name and "exactly 0" in d.name]
    assert zeros
    z = math.log10(zeros[0].y[0])
    drawn = [np.log10(np.asarray(d.y, dtype=float)) for d in fig.data
             if d.name and "exactly 0" not in d.name and d.y is not None]
    lowest = min(float(np.nanmin(a[np.isfinite(a)])) for a in drawn if np.isfinite(a).any())
    assert lo < z < lowest, "the ▽ markers lie below every drawn line, at the bottom of the range"
    assert z - lo < 0.1 * (hi - lo)


def test_map_subtitle_one_note_per_line_and_room_for_it():
    relu = tiny_model("rnn_relu", 1)
    text = (SMALL_TEXT * 20)[:400]
    gm = gradient_map(relu, text, whatif=WhatIf(whh_scale=5.0, truncate=3))
    fig = PG.gradient_map_figure(gm)
    title = fig.layout.title.text
    lines = title.split("<br>")
    assert len(lines) >= 3 and all(len(line) < 110 for line in lines)
    assert fig.layout.margin.t >= 50 + 22 * (len(lines) - 1)
    assert fig.layout.xaxis.automargin is True


def test_chain_method_is_a_tooltip_and_overflow_wording_matches_the_reading():
    relu = tiny_model("rnn_relu", 1)
    text = (SMALL_TEXT * 20)[:400]
    ch = jacobian_chain(relu, text, whatif=WhatIf(whh_scale=5.0))
    fig = PG.jacobian_chain_figure(ch)
    assert ch.method not in fig.layout.title.text
    assert "Krylov" not in fig.layout.title.text and "SVD" not in fig.layout.title.text
    assert any(a.hovertext and ch.method in a.hovertext for a in fig.layout.annotations)
    if ch.forward.any:
        assert f"from step t = {ch.forward.steps[0]} on" in fig.layout.title.text


def test_spectral_gaps_are_explained_on_the_chart():
    model = tiny_model("rnn_tanh", 1)
    ch = jacobian_chain(model, SMALL_TEXT)
    ch.log10_spectral[3:] = float("-inf")                # as if the product underflowed
    fig = PG.jacobian_chain_figure(ch)
    assert "spectral norm missing" in fig.layout.title.text
    assert "underflow" in fig.layout.title.text


# ------------------------------------------------------------------ item 6: heatmaps that teach
def test_big_heatmap_labels_unit_ids_and_names_the_named_units():
    from rnnviz.plots import states as PS
    T, h = 50, 256
    values = np.random.default_rng(0).normal(size=(T, h)).astype(np.float32)
    order = list(range(h))[::-1]
    fig = PS.state_heatmap(values, list("x" * T), units=order, named={30: "paren depth"})
    ya = fig.layout.yaxis
    assert ya.tickmode == "array" and 20 <= len(ya.tickvals) <= PS.UNIT_TICKS + 2
    assert all(v.startswith("L0 h[") for v in ya.tickvals)
    assert "<b>L0 h[30] · paren depth</b>" in ya.ticktext and "L0 h[30]" in ya.tickvals


def test_name_units_finds_a_unit_that_tracks_a_feature():
    import torch

    from rnnviz.features import feature
    from rnnviz.units.names import name_units
    text = "the time machine by h. g. wells, a story of the year eight hundred thousand"
    rng = np.random.default_rng(1)
    values = torch.tensor(rng.normal(size=(len(text), 64)), dtype=torch.float32) * 0.1
    values[:, 7] += feature("whitespace", text)
    found = {n.unit: n for n in name_units(values, text)}
    assert 7 in found and found[7].feature == "whitespace" and found[7].r > 0.9
    assert found[7].label == "whitespace"
    assert name_units(values[:10], text[:10]) == []         # too short to name anything


def test_compare_heatmaps_show_the_characters():
    from rnnviz.compare import compare
    cmp = compare(SMALL_TEXT[:30], {"a": tiny_model("rnn_tanh", 1), "b": tiny_model("lstm", 1)})
    fig = PC.hidden_small_multiples(cmp, width=30)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        assert list(axis.ticktext)[:3] == [PC._label(c) for c in SMALL_TEXT[:3]]
    assert fig.layout.yaxis.ticktext and all(t.startswith("L0 h[") for t in fig.layout.yaxis.ticktext)


def test_pattern_order_puts_units_with_one_time_course_together():
    import torch

    from rnnviz import views
    torch.manual_seed(1)
    a, b, c = torch.randn(200, 1), torch.randn(200, 1), torch.randn(200, 1)
    v = torch.cat([a, b, c, a, b, c, a, b, c], dim=1) + 0.05 * torch.randn(200, 9)
    v = torch.cat([v, torch.zeros(200, 1)], dim=1)
    order = views.unit_order(v, "pattern")
    assert sorted(order) == list(range(10)) and order[-1] == 9       # constant unit last
    groups = [u % 3 for u in order[:9]]
    runs = sum(1 for i in range(1, 9) if groups[i] != groups[i - 1]) + 1
    assert runs == 3, order                                          # three bands, none split
    assert views.unit_order(v, "pattern") == order                   # deterministic


def test_pattern_order_matches_the_svd_of_the_standardised_states():
    """The two leading loadings come from an eigendecomposition of zᵀz: the order is the one the
    SVD's first two right singular vectors give (computed here with torch.linalg.svd)."""
    import math

    import torch

    from rnnviz import views
    torch.manual_seed(3)
    v = torch.tanh(torch.randn(300, 40).cumsum(0) * 0.1)
    z = v.double()
    z = (z - z.mean(0)) / z.std(0, unbiased=False)
    vt = torch.linalg.svd(z, full_matrices=False)[2]
    pc1, pc2 = (p if float(p[p.abs().argmax()]) > 0 else -p for p in (vt[0], vt[1]))
    srt, idx = torch.sort(torch.atan2(pc2, pc1))
    cut = (int(torch.argmax(torch.diff(torch.cat([srt, srt[:1] + 2 * math.pi])))) + 1) % 40
    assert views.unit_order(v, "pattern") == [int(i) for i in torch.cat([idx[cut:], idx[:cut]])]
