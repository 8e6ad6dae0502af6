"""rnnviz.lesson: every demo's numbers checked against an independent computation."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from rnnviz import lesson as L
from rnnviz.plots import lesson as PL

from .conftest import SMALL_TEXT, tiny_model


# ---------------------------------------------------------------------------- (a) toy network
def _toy_by_hand(p: dict, act: str):
    """Plain-Python loops, no torch: H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h), O_t = φ(H_t W_hq + b_q)."""
    phi = (lambda a: max(0.0, a)) if act == "relu" else math.tanh
    h_prev = [0.0, 0.0]
    H, O = [], []
    for t in range(3):
        x = p["X"][t][0]
        h = [phi(x * p["W_xh"][0][j] + sum(h_prev[i] * p["W_hh"][i][j] for i in range(2)) + p["b_h"][0][j])
             for j in range(2)]
        o = [phi(sum(h[i] * p["W_hq"][i][k] for i in range(2)) + p["b_q"][0][k]) for k in range(3)]
        H.append(h), O.append(o)
        h_prev = h
    return np.array(H), np.array(O)


@pytest.mark.parametrize("preset", ["dead", "alive"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_toy_matches_hand_computation(preset, act):
    p = L.TOY_PRESETS[preset]
    res = L.run_toy(p, act)
    H, O = _toy_by_hand(p, act)
    np.testing.assert_allclose(res.H.numpy(), H, atol=1e-12)
    np.testing.assert_allclose(res.O.numpy(), O, atol=1e-12)
    assert res.shapes() == {"X": "3×1", "W_xh": "1×2", "W_hh": "2×2", "b_h": "1×2", "W_hq": "2×3",
                            "b_q": "1×3", "A": "3×2", "H": "3×2", "Z": "3×3", "O": "3×3"}
    for s in res.steps:       # the per-step pieces add up to the pre-activation
        torch.testing.assert_close(s.XW + s.HW + res.params["b_h"], s.A_t)


def test_relu_all_zero_really_is_zero_and_has_zero_gradient():
    res = L.run_toy(None, "relu")                    # the "dead" preset
    assert res.H_all_zero and res.O_all_zero
    assert torch.equal(res.H, torch.zeros(3, 2, dtype=torch.float64))
    assert torch.equal(res.O, torch.zeros(3, 3, dtype=torch.float64))
    assert (res.A <= 0).all()                        # why: every pre-activation is non-positive
    assert res.dead_units == [0, 1]
    assert all(v == 0.0 for v in res.grad_norms.values())
    assert any("≤ 0" in line for line in res.explanation)
    tanh = L.run_toy(None, "tanh")                   # contrast: same weights, tanh is alive
    assert not tanh.H_all_zero and (tanh.H != 0).all() and sum(tanh.grad_norms.values()) > 0


def test_alive_preset_has_a_dead_unit_only():
    res = L.run_toy(L.toy_params("alive"), "relu")
    assert not res.H_all_zero and res.dead_units == [1]


@pytest.mark.parametrize("bad, msg", [
    ({"X": [[1.0], [2.0]]}, "X must have shape 3×1"),
    ({"W_hh": [[1.0, float("nan")], [0.0, 0.0]]}, "NaN"),
    ({"W_hq": "abc"}, "table of numbers"),
])
def test_toy_bad_values_raise_readable_errors(bad, msg):
    p = {**L.TOY_PRESETS["dead"], **bad}
    with pytest.raises(L.ToyInputError, match=msg):
        L.run_toy(p)
    with pytest.raises(L.ToyInputError, match="activation"):
        L.run_toy(None, "sigmoid")


def test_toy_figure_shapes():
    fig = PL.toy_figure(L.run_toy())
    assert [np.shape(t.z) for t in fig.data] == [(3, 2), (3, 2), (3, 3), (3, 3)]


# ---------------------------------------------------------------------------- (b) words
def test_word_step_through_learns_by_and_attribution_is_measured():
    wa = L.word_step_through(hidden_size=4, seed=0, train_steps=100)
    assert wa.vocab == ["<unk>", "the", "time", "machine", "by"]
    assert wa.H.shape == (3, 4) and wa.O_3.shape == (5,)
    assert int(wa.P_3.argmax()) == 4 and wa.P_3[4] > 0.9 and wa.final_loss < 0.05
    # the forward pass equals the book's recurrence with the model's own textbook parameters
    p = wa.params
    h = torch.zeros(4)
    for t in range(3):
        x = torch.nn.functional.one_hot(torch.tensor(t + 1), 5).float()
        h = torch.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
        torch.testing.assert_close(wa.H[t], h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wa.O_3, h @ p["W_hq"] + p["b_q"], atol=1e-5, rtol=1e-5)
    # ablation of "machine" re-computed by hand: X_3 = 0
    h = torch.zeros(4)
    for t in range(3):
        x = torch.nn.functional.one_hot(torch.tensor(t + 1), 5).float() * (t != 2)
        h = torch.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
    assert wa.ablation[2] == pytest.approx(float(wa.O_3[4] - (h @ p["W_hq"] + p["b_q"])[4]), abs=1e-5)
    assert len(wa.grad_norm) == 3 and all(g >= 0 for g in wa.grad_norm)
    # gradient × input of a one-hot equals the gradient entry at the word's index: check by finite differences
    eps = 1e-3
    def o3_by(scale):
        h = torch.zeros(4, dtype=torch.float64)
        P = {k: v.double() for k, v in p.items()}
        for t in range(3):
            x = torch.nn.functional.one_hot(torch.tensor(t + 1), 5).double() * (scale if t == 0 else 1.0)
            h = torch.tanh(x @ P["W_xh"] + h @ P["W_hh"] + P["b_h"])
        return float((h @ P["W_hq"] + P["b_q"])[4])
    fd = (o3_by(1 + eps) - o3_by(1 - eps)) / (2 * eps)
    assert wa.grad_x_input[0] == pytest.approx(fd, abs=1e-4)
    fig = PL.word_attribution_figure(wa)
    assert len(fig.data) == 3 and list(fig.data[0].x) == ["the", "time", "machine"]


def _o3_by_with_torch_rnn(params: dict, zero: int | None) -> float:
    """O_3[by] from torch.nn.RNN (PyTorch's own cell) loaded with the textbook parameters, X_zero = 0."""
    h = params["W_hh"].shape[0]
    rnn = torch.nn.RNN(5, h, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(params["W_xh"].T)
        rnn.weight_hh_l0.copy_(params["W_hh"].T)
        rnn.bias_ih_l0.copy_(params["b_h"])
        rnn.bias_hh_l0.zero_()
        x = torch.nn.functional.one_hot(torch.arange(1, 4), 5).float()
        if zero is not None:
            x[zero] = 0.0
        out, _ = rnn(x[None])
        return float((out[0, -1] @ params["W_hq"] + params["b_q"])[4])


def test_ablation_sentence_states_the_sign_of_zeroing():
    """#9: the page said zeroing "machine" changes O_3[by] by +0.846 when it lowers it by 0.846."""
    wa = L.word_step_through(hidden_size=4, seed=0, train_steps=100)
    base = _o3_by_with_torch_rnn(wa.params, None)
    phrases = L.ablation_effects(wa)
    for t, word in enumerate(wa.words):
        zeroed = _o3_by_with_torch_rnn(wa.params, t)
        assert wa.ablation[t] == pytest.approx(base - zeroed, abs=1e-4)   # the contribution
        change = zeroed - base                                              # what zeroing does
        verb = "raises" if change > 0 else "lowers"
        assert phrases[t] == f"{verb} it by {abs(change):.3f} ({word})"
    # the trained model relies on "machine": zeroing it lowers the score of "by"
    assert wa.ablation[2] > 0 and phrases[2].startswith("lowers")
    assert "+" not in " ".join(phrases)


# ---------------------------------------------------------------------------- (c1) outputs
def test_output_size_is_vocab_size():
    m = tiny_model("gru", 2)
    info = L.output_size(m)
    assert info["vocab_size"] == m.config.vocab_size == info["b_q"][0] == info["W_hq"][1]
    assert info["W_hq"] == (8, m.config.vocab_size) and info["has_unk"]


# ---------------------------------------------------------------------------- (c2) bigram
def _counted(text):
    nxt = defaultdict(Counter)
    for a, b in zip(text, text[1:]):
        nxt[a][b] += 1
    return {a: {b: n / sum(c.values()) for b, n in c.items()} for a, c in nxt.items()}


@pytest.mark.parametrize("text", [SMALL_TEXT * 3, "abababba", "the time machine by h. g. wells"])
def test_bigram_rnn_reproduces_counted_frequencies(text):
    res = L.bigram_exact_rnn(text)
    counted = _counted(text)
    tokens = res.tokens
    worst = 0.0
    for a, row in counted.items():
        i = tokens.index(a)
        for j, b in enumerate(tokens):
            worst = max(worst, abs(float(res.rnn[i, j]) - row.get(b, 0.0)))
    assert worst < 1e-6
    assert res.max_abs_error < 1e-6 and res.max_abs_error_along_text < 1e-6
    assert res.rnn_cross_entropy == pytest.approx(res.bigram_cross_entropy, abs=1e-6)
    # the construction: one-hot hidden state, log-probabilities as W_hq
    V = len(tokens)
    torch.testing.assert_close(res.params["W_xh"], torch.eye(V))
    assert torch.count_nonzero(res.params["W_hh"]) == 0
    i, j = tokens.index(text[0]), tokens.index(text[1])
    assert float(res.params["W_hq"][i, j]) == pytest.approx(math.log(counted[text[0]][text[1]]), abs=1e-6)
    assert PL.bigram_figure(res).data[0].z.shape[0] <= 30


def test_bigram_rejects_short_text():
    with pytest.raises(ValueError, match="at least 2"):
        L.bigram_exact_rnn("a")


# ---------------------------------------------------------------------------- (c4) forgetting
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru_d2l"])
def test_counterfactual_decay_is_measured(cell):
    m = tiny_model(cell, 2)
    text = SMALL_TEXT * 2
    f = L.counterfactual_forgetting(m, text, 1, "x", threshold=0.01, relative=True)
    import rnnviz
    a, b = rnnviz.trace(m, text), rnnviz.trace(m, text[:1] + "x" + text[2:])
    expect = torch.sqrt(sum(((a[f"layer{l}.h"] - b[f"layer{l}.h"]).double() ** 2).sum(1) for l in range(2)))
    torch.testing.assert_close(f.distance, expect)
    assert float(f.distance[0]) == 0.0 and float(f.distance[1]) > 0
    assert f.below_at is not None and f.below_at > 1
    assert (f.relative[f.below_at:] < 0.01).all() and f.relative[f.below_at - 1] >= 0.01
    assert f.steps_to_forget == f.below_at - 1
    assert float(f.distance[-1]) < float(f.distance[1])          # it decays
    fig = PL.forgetting_figure(f)
    assert len(fig.data) == 2


def test_counterfactual_never_forgotten_and_bad_input():
    m = tiny_model("lstm")
    f = L.counterfactual_forgetting(m, "hello", 0, "w", threshold=1e-9)
    assert f.below_at is None and f.steps_to_forget is None
    for args, msg in [(("hello", 9, "x"), "position"), (("hello", 0, "xy"), "one replacement"),
                      (("h", 0, "x"), "at least 2")]:
        with pytest.raises(ValueError, match=msg):
            L.counterfactual_forgetting(m, *args)
    g = L.counterfactual_forgetting(m, "hello", 0, "€")
    assert g.unknown_new


# ---------------------------------------------------------------------------- (c3) gradients
def test_gradient_presets_are_measured_with_the_gradients_module():
    import rnnviz.gradients as G
    m = tiny_model("rnn_tanh")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rows = L.measure_gradient_presets(m, SMALL_TEXT * 2, max_chars=60)
    assert [r["scale"] for r in rows] == [0.5, 1.0, 2.0]
    assert rows[0]["factor"] < rows[1]["factor"] < rows[2]["factor"]
    ref = G.norm_curve(m, (SMALL_TEXT * 2)[-60:], loss="last", whatif=G.WhatIf(whh_scale=2.0))
    assert rows[2]["factor"] == pytest.approx(ref.fits[ref.top].factor)
    assert all(r["params"] == {"gr.scale": f"{r['scale']:.1f}"} for r in rows)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())   # model untouched
