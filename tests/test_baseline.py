"""rnnviz.baseline: interpolated Kneser–Ney character n-grams against a hand computation, the
normalisation of every distribution (brute-force sum over the vocabulary) and unseen characters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnviz.baseline import UNK, Counts, NGram, fit_ngrams

TRAIN = ("the time traveller for so it will be convenient to speak of him was expounding a recondite "
         "matter to us. his grey eyes shone and twinkled, and his usually pale face was flushed. ") * 3


def test_hand_computed_bigram():
    """train "abab", D = 0.5, V = {a, b, <unk>}. Continuation counts: N₁₊(•a) = N₁₊(•b) = 1, so
    P₁(a) = P₁(b) = (1 − ½)/2 + ½·2/2·⅓ = 5/12 and P₁(<unk>) = 1/6. Context "a" (c = 2, one type):
    P(b|a) = (2 − ½)/2 + ½·1/2·5/12 = 41/48, P(a|a) = ½·½·5/12 = 5/48, P(<unk>|a) = ¼·⅙ = 1/24."""
    m = fit_ngrams("abab", max_order=2, discount=0.5)
    assert m[2].vocab == ("a", "b", UNK)
    assert m[2].prob("a", "b") == pytest.approx(41 / 48)
    assert m[2].prob("a", "a") == pytest.approx(5 / 48)
    assert m[2].prob("a", UNK) == pytest.approx(1 / 24)
    assert m[2].prob("b", "b") == pytest.approx(0.5 * 5 / 12)      # context "b": c = 1, one type
    # the unigram model is its own top order: raw counts (2 each of 4), P = 1.5/4 + ½·2/4·⅓
    assert m[1].prob("", "a") == pytest.approx(1.5 / 4 + 1 / 12)
    assert m[2].surprisal("aba").tolist() == pytest.approx([-math.log(41 / 48), -math.log(m[2].prob("b", "a"))])


@pytest.mark.parametrize("discount", [None, 0.75])
def test_distributions_sum_to_one_for_every_context(discount):
    models = fit_ngrams(TRAIN, discount=discount)
    seen = sorted({TRAIN[i:i + k] for k in range(0, 5) for i in range(0, len(TRAIN) - k, 7)})
    unseen = ["zq", "é", "xyzzy", "th\u00e9", "  ", "e.\n"]
    for n, m in models.items():
        for ctx in seen + unseen:
            total = sum(m.distribution(ctx).values())
            assert total == pytest.approx(1.0, abs=1e-12), (n, ctx)


def test_unseen_characters_get_the_unk_slot():
    m = fit_ngrams(TRAIN)[5]
    assert "é" not in m.vocab and "Q" not in m.vocab
    p = m.prob("the ", "é")
    assert 0 < p == m.prob("the ", UNK) == m.prob("the ", "Q")
    s = m.surprisal("the é time Q")
    assert s.shape == (11,) and np.isfinite(s).all()
    assert s[3] == pytest.approx(-math.log(p))


def test_higher_orders_fit_their_training_text_better():
    models = fit_ngrams(TRAIN)
    held = "the time traveller was expounding a matter to us."
    nats = [models[n].nats_per_char(held) for n in range(1, 6)]
    assert nats == sorted(nats, reverse=True)
    with pytest.raises(ValueError):
        models[3].nats_per_char("a")
    with pytest.raises(ValueError):
        Counts.fit("")
    with pytest.raises(ValueError):
        NGram(Counts.fit("ab", 2), 3)


def test_models_trained_on_one_split_share_one_baseline_key():
    """The page fits n-grams once per training split: the shipped timemachine models (every cell,
    one and several layers) name the same split; the Python and Shakespeare models their own."""
    import pytest as _pytest

    import rnnviz
    from rnnviz.baseline import BaselineError, training_split

    keys = {n: training_split(rnnviz.load_model(n)) for n in
            ("timemachine-lstm", "timemachine-rnn", "timemachine-lstm-2layer", "python-lstm", "shakespeare-lstm")}
    assert keys["timemachine-lstm"] == keys["timemachine-rnn"] == keys["timemachine-lstm-2layer"]
    assert keys["timemachine-lstm"][:2] == ("timemachine", "d2l")
    assert len({keys["timemachine-lstm"], keys["python-lstm"], keys["shakespeare-lstm"]}) == 3
    hash(keys["python-lstm"])
    bare = rnnviz.build_model(rnnviz.load_model("timemachine-rnn").config, seed=0)
    with _pytest.raises(BaselineError, match="does not record"):
        training_split(bare)
