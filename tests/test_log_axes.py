"""#28 item 7: every log axis of every chart shows at most eight labelled ticks, whatever the range,
each at a power of ten (or 2× / 5× one over a narrow range) and labelled with its value."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

from rnnviz import lesson as L
from rnnviz import units as U
from rnnviz.gradients import WhatIf, jacobian_chain, norm_curve
from rnnviz.plots import common
from rnnviz.plots import compare as PC
from rnnviz.plots import gradients as PG
from rnnviz.plots import lesson as PL
from rnnviz.plots import training as PT
from rnnviz.plots import units as PU
from tests.conftest import SMALL_TEXT, tiny_model

PLOTS = pathlib.Path(common.__file__).parent


def _log_axes(fig) -> list:
    layout = fig.to_plotly_json()["layout"]
    return [v for k, v in layout.items() if re.fullmatch(r"[xy]axis\d*", k) and v.get("type") == "log"]


def _check(fig, min_axes: int = 1) -> list[list[str]]:
    axes = _log_axes(fig)
    assert len(axes) >= min_axes
    labels = []
    for ax in axes:
        assert ax.get("tickmode") == "array", ax
        vals, text = list(ax["tickvals"]), list(ax["ticktext"])
        assert 1 <= len(vals) <= common.MAX_LOG_TICKS and len(vals) == len(text)
        assert vals == sorted(vals) and len(set(text)) == len(text)
        for v in vals:                                   # 1, 2 or 5 × a power of ten
            mantissa = v / 10.0 ** math.floor(math.log10(v) + 1e-9)
            assert min(abs(mantissa - m) for m in (1, 2, 3, 5)) < 1e-6, v
        labels.append(text)
    return labels


def _figures():
    lstm, relu = tiny_model("lstm", 1), tiny_model("rnn_relu", 1)
    text = SMALL_TEXT * 2
    yield "norm curve", PG.norm_curve_figure(norm_curve(lstm, text))
    yield "norm curve, W_hh × 5 (many decades)", PG.norm_curve_figure(
        norm_curve(relu, text, whatif=WhatIf(whh_scale=5.0)))
    yield "Jacobian chain", PG.jacobian_chain_figure(jacobian_chain(lstm, text))
    k = np.arange(1, 40)
    yield "Compare gradients, 38 decades", PC.gradient_curves(
        {"rnn": (k, 10.0 ** -k.astype(float)), "lstm": (k, np.full(39, 0.5))})
    yield "Lesson forgetting", PL.forgetting_figure(L.counterfactual_forgetting(lstm, text, 3, "x"))
    yield "Units counterfactual", PU.counterfactual_figure(U.counterfactual(lstm, text, 4, 8, "zzzz"))
    steps = list(range(1, 201))
    before = [5.0 * 0.97 ** s for s in steps]
    yield "Train gradient norm", PT.grad_norm_figure(steps, before, [min(b, 1.0) for b in before], 1.0)


@pytest.mark.parametrize("name,fig", list(_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_log_axis_has_at_most_eight_labelled_ticks(name, fig):
    _check(fig)


def test_the_38_decade_compare_chart_and_the_train_axis_read_cleanly():
    k = np.arange(1, 40)
    (labels,) = _check(PC.gradient_curves({"rnn": (k, 10.0 ** -k.astype(float))}))
    assert labels == ["10⁻³⁵", "10⁻³⁰", "10⁻²⁵", "10⁻²⁰", "10⁻¹⁵", "10⁻¹⁰", "10⁻⁵"]
    # "5, 2, 0.1, 5" (Plotly's minor labels) is gone: every label is the value it marks
    fig = PT.grad_norm_figure([1, 2, 3], [0.08, 0.5, 4.0], [0.08, 0.5, 1.0], 1.0)
    (labels,) = _check(fig)
    assert labels == ["0.1", "0.2", "0.5", "1", "2"]
    assert [float(t) for t in labels] == pytest.approx(list(fig.layout.yaxis.tickvals))


@pytest.mark.parametrize("lo,hi", [(-38, 0.5), (-300, 300), (-1, 0.7), (0.1, 0.6), (-3, -2.5), (0, 0), (-12, 3)])
def test_log_ticks_thin_to_eight(lo, hi):
    vals, text = common.log_ticks(lo, hi)
    assert 1 <= len(vals) <= 8 and len(text) == len(vals)
    assert all(lo - 1.01 <= math.log10(v) <= hi + 1.01 for v in vals)


def test_no_chart_sets_a_log_axis_by_hand():
    """Every log axis goes through common.log_axis, so the rule above covers all of them."""
    for path in PLOTS.glob("*.py"):
        if path.name != "common.py":
            assert not re.search(r"""type\s*=\s*["']log["']|yaxis_type|xaxis_type""", path.read_text()), path


def test_train_legends_sit_above_the_plot_not_on_the_axis_title():
    steps = list(range(1, 11))
    hist = [{"step": 5, "train_loss": 2.0, "val_loss": 2.1}, {"step": 10, "train_loss": 1.5, "val_loss": 2.0}]
    for fig in (PT.loss_figure(steps, [2.0] * 10, hist), PT.grad_norm_figure(steps, [1.0] * 10, [1.0] * 10, 1.0)):
        legend = fig.layout.legend
        assert legend.y >= 1 and legend.yanchor == "bottom"       # in the top margin
        assert fig.layout.margin.t >= 70 and fig.layout.margin.b >= 40
