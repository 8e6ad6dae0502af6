"""rnnviz.units.scorecard against independent truths: a model built by hand in which one unit
latches "inside parentheses" and the output reads it; untrained models; rnnviz.interventions'
own ablation; random features for the permutation p-values; determinism; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnviz import interventions
from rnnviz.model import ModelConfig, build_model
from rnnviz.trace import trace
from rnnviz.units import ScorecardError, scorecard
from rnnviz.units.scorecard import COLUMNS
from rnnviz.units.scorecard_cache import load_controls, write_controls

LETTERS = "abcdefgh "
TOKENS = ("<unk>", "(", ")", *LETTERS)
H = 24


def paren_text(n: int, seed: int) -> str:
    """Letters with non-nested "( … )" groups: '(' with p = 0.06 outside, ')' with p = 0.15 inside."""
    rng = np.random.default_rng(seed)
    out, inside = [], False
    for _ in range(n):
        if rng.random() < (0.15 if inside else 0.06):
            out.append(")" if inside else "(")
            inside = not inside
        else:
            out.append(LETTERS[rng.integers(len(LETTERS))])
    return "".join(out)


def inside(text: str) -> list[float]:
    """1 from '(' up to (not including) its ')' — the state unit 0 of the hand model holds."""
    out, on = [], False
    for ch in text:
        on = True if ch == "(" else False if ch == ")" else on
        out.append(1.0 if on else 0.0)
    return out


def hand_model():
    """rnn_tanh, H units. Unit 0: h0_t = tanh(3·h0_{t−1} + 6·[x='('] − 6·[x=')']), a latch (±0.995)
    that nothing else feeds or reads except the output: logit('(') = −2.93 − 2.07·h0,
    logit(')') = −2.33 + 2.67·h0 (the text's odds inside / outside). Units 1… keep PyTorch's
    initialisation among themselves and reach the output only through weights of 0.05·N(0, 1)."""
    model = build_model(ModelConfig("rnn_tanh", H, 1, TOKENS), seed=7)
    p = model.textbook_params(0)
    g = torch.Generator().manual_seed(11)
    p["W_xh"][:, 0] = 0.0
    p["W_xh"][TOKENS.index("("), 0], p["W_xh"][TOKENS.index(")"), 0] = 6.0, -6.0
    p["W_hh"][0, :] = 0.0
    p["W_hh"][:, 0] = 0.0
    p["W_hh"][0, 0] = 3.0
    p["b_h"][0] = 0.0
    p["W_hq"] = 0.05 * torch.randn(H, len(TOKENS), generator=g)
    p["W_hq"][0] = 0.0
    p["W_hq"][0, TOKENS.index("(")], p["W_hq"][0, TOKENS.index(")")] = -2.07, 2.67
    p["b_q"] = torch.zeros(len(TOKENS))
    p["b_q"][0] = -10.0
    p["b_q"][TOKENS.index("(")], p["b_q"][TOKENS.index(")")] = -2.93, -2.33
    model.set_textbook_params(0, p)
    return model


@pytest.fixture(scope="module")
def hand():
    model = hand_model()
    text = paren_text(2500, seed=1)
    df = scorecard(model, text, {"inside": inside(text)}, min_shift=50, seed=3)
    return model, text, df


def test_hand_model_latch_is_the_only_causal_unit(hand):
    _, _, df = hand
    assert list(df.columns) == COLUMNS
    row = df[(df.unit == 0) & (df.state == "h")].iloc[0]
    assert row.verdict == "causal", row.to_dict()
    assert row.stat > 0.99 and row.random_delta_z >= 2 and row.delta_loss > row.delta_loss_elsewhere
    others = df[df.unit != 0]
    assert (others.verdict != "causal").all(), others[others.verdict == "causal"]


def test_ablation_agrees_with_interventions(hand):
    model, text, df = hand
    row = df[df.unit == 0].iloc[0]
    on, off = mean_ablation_deltas(model, text)
    assert on == pytest.approx(row.delta_loss, rel=1e-6, abs=1e-9)
    assert off == pytest.approx(row.delta_loss_elsewhere, rel=1e-6, abs=1e-9)


def test_untrained_model_has_no_causal_unit():
    model = build_model(ModelConfig("rnn_tanh", 64, 1, TOKENS), seed=123)
    text = paren_text(2500, seed=2)
    df = scorecard(model, text, ["paren_depth", "whitespace"], min_shift=50, seed=0)
    assert (df.verdict != "causal").all()
    # the model is one more draw of what the random-init control draws: about 5 % of units beat
    # its 95th percentile, fewer once the permutation p-value must also pass
    assert (df.verdict == "correlational").mean() <= 0.10


def _random_features(T: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """n binary features of random runs (mean length 20) and n smooth graded ones (AR(1), φ = 0.95)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(n):
        flips = rng.random(T) < 1 / 20
        out[f"b{k}"] = (np.cumsum(flips) % 2).astype(float)
        x = np.zeros(T)
        e = rng.normal(size=T)
        for t in range(1, T):
            x[t] = 0.95 * x[t - 1] + e[t]
        out[f"g{k}"] = x
    return out


def test_permutation_p_values_are_calibrated_on_random_features():
    model = hand_model()
    text = paren_text(2500, seed=4)
    feats = _random_features(len(text), 30, seed=5)
    df = scorecard(model, text, feats, min_shift=50, controls=1, draws=2, seed=0, max_causal=0)
    frac = (df.p_raw < 0.05).mean()
    frac_perm = (df.p_perm < 0.05).mean()
    assert 0.025 <= frac <= 0.085, frac
    assert 0.025 <= frac_perm <= 0.085, frac_perm
    assert (df.p_value >= df.p_raw).all()
    assert (df.verdict == "chance").mean() >= 0.97


def test_deterministic_for_a_seed_and_cache_reproduces():
    model = hand_model()
    text = paren_text(800, seed=6)
    kw = dict(min_shift=50, controls=2, draws=3, seed=9)
    a = scorecard(model, text, ["paren_depth"], **kw)
    b = scorecard(model, text, ["paren_depth"], **kw)
    c = scorecard(model, text, ["paren_depth"], cache=a.attrs["controls"], **kw)
    assert a.equals(b) and a.equals(c)
    assert a.attrs["controls"] == c.attrs["controls"]
    d = scorecard(model, text, ["paren_depth"], **{**kw, "seed": 10})
    assert a.attrs["controls"]["control_seeds"] != d.attrs["controls"]["control_seeds"]


def test_sidecar_round_trip_and_stale_cache(tmp_path):
    model = hand_model()
    text = paren_text(800, seed=6)
    kw = dict(min_shift=50, controls=2, draws=3, seed=9, max_causal=0)
    a = scorecard(model, text, ["paren_depth", "vowel"], **kw)
    ckpt = tmp_path / "hand.safetensors"
    assert write_controls(a.attrs["controls"], ckpt, "test").name == "hand.scorecard.json"
    stored = load_controls(ckpt)
    assert scorecard(model, text, ["vowel"], cache=stored, **kw).equals(
        scorecard(model, text, ["vowel"], **kw))
    # another text: the stored controls do not apply and are recomputed, not reused
    other = paren_text(800, seed=8)
    assert scorecard(model, other, ["vowel"], cache=stored, **kw).attrs["controls"] == \
        scorecard(model, other, ["vowel"], **kw).attrs["controls"]
    assert load_controls(tmp_path / "missing.safetensors") is None


def test_test_units_are_ablated_beyond_max_causal(hand):
    model, text, _ = hand
    df = scorecard(model, text, {"inside": inside(text)}, min_shift=50, seed=3, max_causal=0,
                   test_units=["layer0.h[0]"])
    assert df.causal_tested.tolist() == [True] + [False] * (H - 1)
    assert df.verdict[0] == "causal"


@pytest.mark.parametrize("text, features, match", [
    ("", ["vowel"], "empty"),
    ("ab(cd)" * 50, {"x": [0.0, 1.0] * 10}, "has 20 values"),
    ("ab(cd)" * 50, {"x": [1.0] * 300}, "constant"),
    ("ab(cd)" * 50, ["no_such_feature"], "Unknown feature"),
    ("ab(cd)" * 50, {}, "at least one feature"),
    ("ab(cd)" * 5, ["vowel"], "needs at least"),
], ids=["empty", "lengths", "constant", "unknown", "no-feature", "short"])
def test_bad_inputs(text, features, match):
    with pytest.raises(ScorecardError, match=match) as err:
        scorecard(hand_model(), text, features, min_shift=50)
    assert isinstance(err.value, ValueError)


def test_report_tables_show_the_verdicts(hand):
    from tools.scorecard_report import feature_table, summary_table

    _, _, df = hand
    rows = feature_table(df, {"inside": "layer0.h[0]"})
    assert rows[2].startswith("| inside | inside = 1 |") and "**causal**" in rows[2]
    assert any(r.startswith("| inside | layer0.h[0] | AUC 1.000") for r in rows)
    table = summary_table({"hand": {"units": H, "features": 1, "causal": 1, "correlational": 2,
                                    "causal_units": ["layer0.h[0] (inside)"],
                                    "nats": {"1-gram": 2.0, "5-gram": 1.2, "RNN": 1.1}}})
    assert table[2] == "| hand | 24 × 1 | 1 | 2 | layer0.h[0] (inside) | 1.100 | 1.200 | 5-gram 1.200 |"


def test_where_a_graded_feature_counts_as_on():
    from rnnviz.units.scorecard import _make_feature

    assert _make_feature("x", [0, 1, 2, 3, 4]).active.tolist() == [False, False, False, True, True]
    assert _make_feature("x", [0, 0, 0, 1, 2]).active.tolist() == [False, False, False, True, True]
    assert _make_feature("x", [0, 5, 5, 5, 5]).active.tolist() == [False, True, True, True, True]
    assert _make_feature("x", [0, 1, 1, 0]).kind == "auc"


def mean_ablation_deltas(model, text: str) -> tuple[float, float]:
    """Independent reference: the surprisal change from mean-ablating unit 0 of layer0.h
    (interventions.ablate), averaged inside the quotes and outside them."""
    mean = float(trace(model, text, gates=False)["layer0.h"][:, 0].double().mean())
    eff = interventions.ablate(model, text, 0, 0, "h", value=mean)
    delta = (eff.patched.surprisal - eff.base.surprisal).double()
    on = torch.tensor(inside(text)[:-1]) > 0.5
    return float(delta[on].mean()), float(delta[~on].mean())
