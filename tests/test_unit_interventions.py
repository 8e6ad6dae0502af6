"""Counterfactual edits and ablations of units (rnnviz.units): an identical edit changes nothing,
edits align the two texts, an ablation never mutates the shared model and equals the trace when it
changes nothing, a forced unit holds its value, a disconnected unit's ablation changes nothing."""

from __future__ import annotations

import pytest
import torch

import rnnviz
from rnnviz import units as U
from tests.conftest import tiny_model
from tests.unit_nets import hand_built

# ---------------------------------------------------------------- counterfactual
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_identical_edit_is_exactly_zero(cell):
    model = tiny_model(cell, layers=2)
    text = "the time machine by h. g. wells"
    cf = U.counterfactual(model, text, 4, 8, text[4:8])
    assert set(cf.delta) == {f"layer{l}.{k}" for l in (0, 1) for k in (("h", "c") if cell == "lstm" else ("h",))}
    assert all(float(v.abs().max()) == 0.0 for v in cf.delta.values())
    assert float(cf.kl.abs().max()) == 0.0
    assert len(cf.steps) == len(text) - 8 + 1


def memoryless():
    """rnn_relu with W_hh = 0: H_t depends on X_t only, so any difference dies after one step."""
    model = hand_built()
    p = model.textbook_params(0)
    model.set_textbook_params(0, {"W_hh": torch.zeros_like(p["W_hh"])})
    return model


@pytest.mark.parametrize("start,end,rep", [(2, 3, "e"), (2, 2, "oo"), (2, 4, ""), (1, 3, "xyz")])
def test_counterfactual_alignment(start, end, rep):
    model = memoryless()
    text = "ab(c)ab(c)ab"
    cf = U.counterfactual(model, text, start, end, rep)
    assert cf.edited == text[:start] + rep + text[end:]
    for j, p, q in zip(cf.steps.tolist(), cf.orig_pos.tolist(), cf.edit_pos.tolist()):
        if j >= 1:       # same suffix character on both sides
            assert text[p] == cf.edited[q]
            assert float(cf.delta["layer0.h"][j - int(cf.steps[0])]) == 0.0
    assert cf.memory("layer0.h", tol=0.0, relative=False) <= 1


def test_counterfactual_bad_input():
    model = tiny_model("gru")
    with pytest.raises(U.UnitsError):
        U.counterfactual(model, "abc", 2, 9, "x")
    with pytest.raises(U.UnitsError):
        U.counterfactual(model, "a", 0, 1, "")


# ---------------------------------------------------------------- ablation
def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cell,kind", [("lstm", "h"), ("lstm", "c"), ("gru", "h"), ("rnn_tanh", "h")])
def test_ablation_never_mutates_and_baseline_matches_trace(cell, kind):
    model = tiny_model(cell, layers=2)
    before = snapshot(model)
    grads = [p.requires_grad for p in model.parameters()]
    text = "the time machine by h. g. wells"
    ab = U.ablate(model, text, 0, 3, kind=kind, mode="clamp", value=0.7)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == grads and not model.training
    tr = rnnviz.trace(model, text)
    assert torch.allclose(ab.log_probs_base, tr.log_probs, atol=1e-5)
    assert torch.allclose(ab.surprisal_base, tr.surprisal, atol=1e-5)
    assert torch.allclose(ab.unit_base, tr[f"layer0.{kind}"][:, 3], atol=1e-5)
    assert ab.surprisal_ablated.shape == (len(text) - 1,) and ab.kl.shape == (len(text),)


def test_forced_unit_holds_its_value():
    model = tiny_model("lstm", layers=2)
    ids = model.vocab.encode("hello world").ids
    _, hs = U.forward_with_unit(model, ids, 1, 5, "h", 0.25)
    assert torch.all(hs[1][:, 5] == 0.25)


def test_ablating_a_disconnected_unit_changes_nothing_and_a_used_one_does():
    model = hand_built()
    p = model.textbook_params(0)
    W_hq = p["W_hq"].clone()
    W_hq[3] = 0.0                          # unit 3 feeds neither the output...
    W_hh = p["W_hh"].clone()
    W_hh[3] = 0.0                          # ...nor any unit
    W_hq[0] = 2.0                          # unit 0 (depth) drives the output
    model.set_textbook_params(0, {"W_hq": W_hq, "W_hh": W_hh})
    text = "a(b(c)d)e"
    ab = U.ablate(model, text, 0, 3)
    assert float(ab.delta_surprisal.abs().max()) == 0.0 and float(ab.kl.max()) == 0.0
    ab0 = U.ablate(model, text, 0, 0)
    assert float(ab0.delta_surprisal.abs().max()) > 0.0
    assert ab0.top(2)[0][1] >= ab0.top(2)[-1][1]


def test_ablation_bad_input():
    model = tiny_model("gru")
    for kwargs in ({"layer": 5, "unit": 0}, {"layer": 0, "unit": 99}, {"layer": 0, "unit": 0, "kind": "c"},
                   {"layer": 0, "unit": 0, "mode": "clamp", "value": float("nan")}):
        with pytest.raises(U.UnitsError):
            U.ablate(model, "abc", **kwargs)
