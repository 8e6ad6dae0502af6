"""rnnviz.compare: alignment across preprocessings, flags, summary; the compare figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rnnviz
from rnnviz import ModelConfig, Vocab, build_model, d2l_clean
from rnnviz import compare as C
from rnnviz.plots import compare as PC

from .conftest import SMALL_TEXT, tiny_model


@pytest.fixture(scope="module")
def d2l_model():
    cfg = ModelConfig("gru", 8, 1, tuple(Vocab.from_text(d2l_clean(SMALL_TEXT)).tokens), preprocessing="d2l")
    return build_model(cfg, seed=1)


@pytest.mark.parametrize("text", ["The Time  Machine, by H. G. Wells!", "..Ab, c!", "abc", "  ", "x\n\ny"])
def test_d2l_alignment(text):
    al = C.align(text, "d2l")
    assert al.seen == d2l_clean(text)
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isalpha():
            assert al.seen[al.index[i]] == ch.lower() and al.first[i]
        else:
            assert al.seen[al.index[i]] == " "
            assert al.first[i] == (i == 0 or (text[i - 1].isascii() and text[i - 1].isalpha()))
    assert np.all(np.diff(al.index) >= 0)


def test_same_preprocessing_surprisal_is_the_trace():
    text = SMALL_TEXT
    a, b = tiny_model("rnn_tanh"), tiny_model("lstm", 2)
    cmp = C.compare(text, {"a": a, "b": b})
    for k, m in enumerate((a, b)):
        s = rnnviz.trace(m, text).surprisal.double().numpy()
        assert math.isnan(cmp.surprisal[k, 0])
        np.testing.assert_allclose(cmp.surprisal[k, 1:], s, rtol=1e-6)
    assert cmp.common.sum() == len(text) - 1
    assert list(cmp.table["checkpoint"]) == ["a", "b"]
    # #28: the measurements come first, so a narrow table never scrolls perplexity out of sight
    assert list(cmp.table.columns)[:4] == ["checkpoint", "cell", "perplexity", "cross-entropy (nats/char)"]
    ce = rnnviz.trace(a, text).cross_entropy
    assert cmp.table.loc[0, "cross-entropy (nats/char)"] == pytest.approx(ce)
    assert cmp.table.loc[0, "bits/char (common)"] == pytest.approx(ce / math.log(2), rel=1e-6)
    assert cmp.notes == []


def test_d2l_model_is_aligned_honestly(d2l_model):
    text = "The Time  Machine, by H. G. Wells"
    raw = tiny_model("lstm")
    cmp = C.compare(text, {"raw": raw, "clean": d2l_model})
    seen = d2l_clean(text)
    tr = rnnviz.trace(d2l_model, text)
    assert tr.text == seen and cmp.runs[1].seen_text == seen
    f = cmp.flags[1]
    # "Time  Machine": the second space is merged away (no number), "T" is read changed as "t"
    i = text.index("  ") + 1
    assert f[i] == C.MERGED and math.isnan(cmp.surprisal[1, i])
    assert f[text.index("M")] == C.CHANGED
    # a letter position carries exactly the surprisal of the cleaned text at its mapped index
    j = text.index("ime")
    assert cmp.surprisal[1, j] == pytest.approx(float(tr.surprisal[seen.index("ime") - 1]))
    # common positions: every model predicted the same original character
    assert not cmp.common[i] and not cmp.common[text.index("M")]
    assert cmp.common[j]
    assert any("d2l-cleaned" in n for n in cmp.notes) and any("not directly comparable" in n for n in cmp.notes)
    counts = C.flag_counts(cmp)
    assert counts.sum(axis=1).tolist() == [len(text)] * 2


def test_unknown_characters_are_flagged():
    m = tiny_model("gru")
    cmp = C.compare("hé€llo", {"g": m, "h": tiny_model("rnn_relu")})
    assert cmp.flags[0, 1] == C.UNKNOWN and cmp.flags[0, 2] == C.UNKNOWN
    assert not cmp.common[1]
    assert any("<unk>" in n for n in cmp.notes)


def test_compare_rejects_bad_requests():
    m = tiny_model("gru")
    with pytest.raises(ValueError, match="at least one"):
        C.compare("abc", {})
    with pytest.raises(ValueError, match="At most 3"):
        C.compare("abc", {str(i): m for i in range(4)})
    with pytest.raises(ValueError, match="empty"):
        C.compare("", {"m": m})


def test_default_selection():
    assert C.default_selection(["a", "timemachine-gru", "timemachine-lstm", "timemachine-rnn"]) == \
        ["timemachine-rnn", "timemachine-gru", "timemachine-lstm"]
    assert C.default_selection(["a", "b", "c", "d"], current="c") == ["c", "a", "b"]


def test_figures(d2l_model):
    text = "a <b>&" * 50
    cmp = C.compare(text, {"raw": tiny_model("lstm", 2), "clean": d2l_model})
    fig = PC.hidden_small_multiples(cmp, "top", start=10, width=50, max_units=4)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert fig.data[0].z.shape == (4, 50)            # units × steps, window of 50
    assert fig.data[0].x[0].startswith("10:")
    assert len(set(fig.data[0].x)) == 50             # repeated characters stay separate columns
    assert all("<b>" not in x for x in fig.data[0].x)  # user text is escaped
    assert fig.data[1].z.shape[1] == 50
    # layer-specific state missing in one model → an empty panel, no crash
    fig = PC.hidden_small_multiples(cmp, "layer1.h")
    assert len(fig.data) == 1
    s = PC.surprisal_lines(cmp)
    assert len(s.data) == 2 and len(s.data[0].y) == len(text)
    g = PC.gradient_curves({"a": (np.arange(3), np.array([1.0, 0.1, 0.0]))})
    assert np.isnan(g.data[0].y[2])


def test_gradient_curves_use_the_gradients_module():
    import rnnviz.gradients as G
    ms = {"a": tiny_model("rnn_tanh"), "b": tiny_model("gru", 2)}
    cmp = C.compare(SMALL_TEXT, ms)
    curves = C.gradient_curves(cmp, ms, max_chars=20)
    assert [c.name for c in curves] == ["a", "b"]
    ref = G.norm_curve(ms["a"], SMALL_TEXT[-20:], loss="last")
    np.testing.assert_allclose(curves[0].norms, ref.h_norms[-1].numpy())
    assert curves[0].chars_used == 20 and curves[0].distance[0] == 18


def test_lone_surrogates_and_control_characters():
    text = "a\ud800b\x00c\u200fd"
    cmp = C.compare(text, {"g": tiny_model("gru"), "l": tiny_model("lstm")})
    assert cmp.surprisal.shape == (2, len(text))
    assert cmp.flags[0, 1] == C.UNKNOWN
    PC.surprisal_lines(cmp).to_json()          # Plotly's JSON refuses lone surrogates: shown as U+FFFD
    PC.hidden_small_multiples(cmp).to_json()
