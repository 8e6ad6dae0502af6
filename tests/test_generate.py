"""generate(): reproducible sampling, greedy = argmax path, probabilities, no mutation of the model."""

from __future__ import annotations

import math

import pytest
import torch

import rnnviz
from rnnviz.generate import generate

from .conftest import tiny_model
from .reference import textbook_run

TEXT = "the time traveller (as we shall call him for now) was explaining\n"


@pytest.fixture(params=["rnn_tanh", "gru", "lstm"])
def model(request):
    return tiny_model(request.param, layers=2, hidden=16, text=TEXT, seed=5)


def independent_greedy(model, prefix: str, n: int) -> str:
    """Argmax path from the textbook equations (tests/reference.py), re-reading the whole text."""
    text = prefix
    for _ in range(n):
        ids = torch.tensor([model.vocab.id_of(ch) for ch in text])
        _, logits = textbook_run(model, ids)
        last = logits[-1].clone()
        last[0] = -math.inf                                    # <unk> is never generated
        text += model.vocab.tokens[int(torch.argmax(last))]
    return text


def test_fixed_seed_is_reproducible(model):
    a = generate(model, "the time ", 60, temperature=1.0, seed=11)
    b = generate(model, "the time ", 60, temperature=1.0, seed=11)
    assert a.text == b.text and a.probs == b.probs
    assert len(a.generated) == 60 and a.text.startswith("the time ")
    others = {generate(model, "the time ", 60, temperature=1.0, seed=s).generated for s in range(5)}
    assert len(others) > 1                                      # the seed matters


def test_temperature_zero_is_the_argmax_path(model):
    g = generate(model, "the time ", 12, temperature=0)
    assert g.text == independent_greedy(model, "the time ", 12)
    assert generate(model, "the time ", 12, temperature=1e-6, seed=3).text == g.text
    assert generate(model, "the time ", 12, temperature=2.0, top_k=1, seed=4).text == g.text


def test_probabilities_match_a_trace_of_the_result(model):
    g = generate(model, "the ", 20, temperature=0.8, top_k=5, seed=2)
    tr = rnnviz.trace(model, g.text)
    start = len(g.prefix) - 1
    for i, (cid, p) in enumerate(zip(g.ids, g.probs)):
        assert p == pytest.approx(float(tr.probs[start + i, cid]), abs=1e-5)
        assert 0 < g.sample_probs[i] <= 1
    # top-k: every sampled char is among the 5 most likely at its step
    for i, cid in enumerate(g.ids):
        top5 = torch.topk(tr.probs[start + i, 1:], 5).indices + 1
        assert cid in top5.tolist()


def test_generation_does_not_mutate_model_or_global_rng(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()                       # even a model left in training mode (dropout) is untouched
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    g1 = generate(model, "the ", 30, seed=9)
    assert torch.equal(rng, torch.get_rng_state())
    assert model.training
    model.eval()
    assert generate(model, "the ", 30, seed=9).text == g1.text
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_bad_arguments_are_refused(model):
    with pytest.raises(ValueError):
        generate(model, "", 5)
    with pytest.raises(ValueError):
        generate(model, "the", 5, temperature=-1)
    with pytest.raises(ValueError):
        generate(model, "the", -1)


def test_shipped_model_greedy_matches_reference_when_present():
    infos = rnnviz.list_checkpoints()
    assert infos, "the shipped checkpoints/ folder is empty"
    m = rnnviz.load_model(infos[0].name)
    g = generate(m, "time traveller ", 8, temperature=0)
    assert g.text == independent_greedy(m, g.prefix, 8)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
