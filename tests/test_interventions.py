"""rnnviz.interventions: clamp over a range, counterfactual edits, and the one 'how long the effect
lasts' rule and KL metric that Units and Lesson share, on cases with a known answer."""

from __future__ import annotations

import math

import pytest
import torch

import rnnviz
from rnnviz import interventions as I
from rnnviz import lesson as L
from rnnviz import units as U
from rnnviz.model import ModelConfig, build_model
from tests.conftest import tiny_model


def halving_model():
    """rnn_relu, h = 1: H_t = ReLU([x_t = a] + 0.5 H_{t-1}). An 'a' sets H to 1 (+ what is left),
    a 'b' adds nothing, so a difference made at one step is exactly halved at every later step."""
    model = build_model(ModelConfig("rnn_relu", 1, 1, ("<unk>", "a", "b")), seed=0)
    model.set_textbook_params(0, {"W_xh": torch.tensor([[0.0], [1.0], [0.0]]), "W_hh": torch.tensor([[0.5]]),
                                  "b_h": torch.zeros(1), "W_hq": torch.tensor([[0.0, 1.0, -1.0]]),
                                  "b_q": torch.zeros(3)})
    return model


def test_effect_duration_rule():
    d = torch.tensor([5.0, 3.0, 0.5, 2.0, 0.1, 0.0])
    assert I.effect_duration(d, 1.0) == 4            # 2.0 at j = 3 is the last step above tol
    assert I.effect_duration(d, 5.0) == 0            # within tol from the intervention on
    assert I.effect_duration(d, 0.05) == 5
    assert I.effect_duration(torch.tensor([1.0, 2.0]), 1.0) is None      # still above at the end
    assert I.effect_duration(torch.tensor([0.0, math.nan]), 1.0) is None
    assert I.effect_duration(torch.tensor([]), 1.0) is None
    assert I.effect_duration(torch.tensor([0.0, 0.0]), 0.0) == 0          # "≤ tol": exactly 0 counts


def test_counterfactual_edit_duration_known_answer():
    model = halving_model()
    text = "a" + "b" * 10
    ed = I.counterfactual_edit(model, text, 0, 1, "b")
    d = ed.diff("layer0.h")
    assert torch.equal(d, 0.5 ** torch.arange(11, dtype=torch.float64))    # 1, ½, ¼, …
    assert ed.duration(0.1, "layer0.h") == 4           # 0.125 > 0.1 ≥ 0.0625
    assert ed.duration(0.125, "layer0.h") == 3         # stays ≤ 0.125 from j = 3
    assert ed.duration(1e-9, "layer0.h") is None       # never within the text
    # The Units and Lesson views report the same number through the same rule.
    cf = U.counterfactual(model, text, 0, 1, "b")
    assert cf.memory("layer0.h", 0.1, relative=False) == 4 == cf.memory("layer0.h", 0.1)
    fg = L.counterfactual_forgetting(model, text, 0, "b", threshold=0.1, relative=False)
    assert fg.steps_to_forget == 4 and fg.below_at == 4
    torch.testing.assert_close(fg.distance, d)


def test_counterfactual_edit_insertion_aligns_on_the_suffix():
    model = halving_model()
    ed = I.counterfactual_edit(model, "bbbbbb", 2, 2, "a")            # insert an 'a'
    assert ed.edited == "bbabbbb" and ed.orig_pos.tolist() == [1, 2, 3, 4, 5]
    assert ed.edit_pos.tolist() == [2, 3, 4, 5, 6]
    torch.testing.assert_close(ed.diff("layer0.h"), torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625], dtype=torch.float64))
    assert ed.duration(0.2, "layer0.h") == 3
    with pytest.raises(ValueError, match="inside the text"):
        I.counterfactual_edit(model, "bbb", 2, 5, "a")


def test_clamp_known_answer_and_duration():
    model = halving_model()
    eff = I.clamp(model, "b" * 10, 0, 0, 1.0, 0, 1)             # H_0 := 1 once, then free
    assert eff.base["layer0.h"].abs().max() == 0
    torch.testing.assert_close(eff.patched["layer0.h"][:, 0], 0.5 ** torch.arange(10.0))
    assert eff.duration(0.1, "layer0.h") == 4
    assert eff.duration(1e-9, "layer0.h") is None


@pytest.mark.parametrize("kind", ["h", "c"])
def test_clamp_over_a_range(kind):
    model = tiny_model("lstm", 2)
    text = "the time machine by h. g. wells"
    start, end, unit = 5, 12, 2
    eff = I.clamp(model, text, 0, unit, 0.9, start, end, kind=kind)
    forced = eff.patched[f"layer0.{kind}"][:, unit]
    assert torch.all(forced[start:end] == 0.9)
    assert not torch.any(forced[end:] == 0.9) and not torch.any(forced[:start] == 0.9)
    for name in eff.base.names():            # nothing differs before the clamp, exactly
        assert torch.equal(eff.base[name][:start], eff.patched[name][:start]), name
    assert float(eff.diff("layer1.h")[start:].max()) > 0
    fused = rnnviz.trace(model, text)
    for name in fused.names():                # the unforced side is the ordinary trace
        torch.testing.assert_close(eff.base[name], fused[name], atol=1e-6, rtol=0)
    assert eff.kl.shape == (len(text),) and float(eff.kl[:start].max()) == 0.0
    d = eff.duration(1e-3)
    assert d is None or (eff.kl[end - 1 + d:] <= 1e-3).all()


def test_ablate_is_clamp_everywhere_and_units_wraps_it():
    model = tiny_model("gru", 2)
    text = "hello world"
    eff = I.ablate(model, text, 1, 4)
    assert torch.all(eff.patched["layer1.h"][:, 4] == 0) and (eff.start, eff.end) == (0, len(text))
    ab = U.ablate(model, text, 1, 4)
    assert torch.equal(ab.kl, eff.kl) and torch.equal(ab.log_probs_ablated, eff.patched.log_probs)


def test_bad_interventions_are_refused():
    model = tiny_model("gru")
    for args in ((1, 0, 0.0), (0, 99, 0.0), (0, 0, math.inf)):
        with pytest.raises(ValueError):
            I.clamp(model, "hello", *args)
    for start, end in ((3, 3), (-1, 2), (0, 9)):
        with pytest.raises(ValueError, match="start < end"):
            I.clamp(model, "hello", 0, 0, 1.0, start, end)
    with pytest.raises(ValueError, match="unknown hook"):
        I.clamp(model, "hello", 0, 0, 1.0, kind="c")


def test_one_metric_for_units_and_lesson():
    model = tiny_model("lstm", 2)
    text = "the time machine by h. g. wells"
    a, b = rnnviz.trace(model, text), rnnviz.trace(model, text[:3] + "x" + text[4:])
    fg = L.counterfactual_forgetting(model, text, 3, "x")
    torch.testing.assert_close(fg.output_change, I.kl_divergence(a.log_probs, b.log_probs))
    cf = U.counterfactual(model, text, 3, 4, "x")
    torch.testing.assert_close(cf.kl, fg.output_change[3:])
    assert U.kl_divergence is I.kl_divergence
