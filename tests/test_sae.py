"""rnnviz.units.sae and the dictionary-feature basis of the scorecard against independent truths:
activations built as sparse combinations of known directions (R² ≈ 1, the directions recovered),
R² and the dead fraction recomputed by hand, the feature-ablation hook against an explicit step-by-step
recomputation with the textbook stepper, determinism for a seed, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnviz.model import ModelConfig, build_model
from rnnviz.trace import trace
from rnnviz.units import scorecard
from rnnviz.units.basis import FeatureRef, SAEBasis, feature_ablation_hook, feature_name, parse_feature_name
from rnnviz.units.names import unit_name
from rnnviz.units.sae import (SAE, SAEError, dead_fraction, explained_variance, load_sae, measure,
                              sae_path, save_sae, train_sae)
from tests.reference import textbook_step

D, K, N = 16, 8, 2000


def sparse_data(seed: int = 3):
    """(X (N, D), true unit directions (D, K)): each row a sum of ~15 % of K random unit directions
    with coefficients in [0.5, 1.5], plus a constant offset 0.3 (the decoder bias must absorb it)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(D, K, generator=g)
    dirs /= dirs.norm(dim=0)
    mask = (torch.rand(N, K, generator=g) < 0.15).float()
    coef = mask * (0.5 + torch.rand(N, K, generator=g))
    return coef @ dirs.T + 0.3, dirs


@pytest.fixture(scope="module")
def fitted():
    x, dirs = sparse_data()
    return x, dirs, train_sae(x, K, l1=0.05, steps=300, batch=512, lr=2e-2, seed=0)


def test_sparse_combinations_are_reconstructed_and_their_directions_recovered(fitted):
    x, dirs, sae = fitted
    assert measure(sae, x)["r2"] > 0.95
    cos = (dirs.T @ sae.W_dec).abs()                       # (K true, K learned)
    assert float(cos.max(1).values.min()) > 0.95           # every true direction has a learned column
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(K), atol=1e-5)


def test_encoder_and_decoder_follow_the_formula(fitted):
    x, _, sae = fitted
    xn = x[:50].double().numpy()
    a = np.maximum(0.0, (xn - sae.b_dec.double().numpy()) @ sae.W_enc.double().numpy().T + sae.b_enc.double().numpy())
    np.testing.assert_allclose(sae.encode(x[:50]).numpy(), a, atol=1e-5)
    xhat = a @ sae.W_dec.double().numpy().T + sae.b_dec.double().numpy()
    np.testing.assert_allclose(sae.reconstruct(x[:50]).numpy(), xhat, atol=1e-5)


def test_explained_variance_and_dead_fraction_by_hand():
    rng = np.random.default_rng(0)
    x, xh = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    sse = sum((x[i, j] - xh[i, j]) ** 2 for i in range(40) for j in range(5))
    mean = x.mean(0)
    sst = sum((x[i, j] - mean[j]) ** 2 for i in range(40) for j in range(5))
    assert explained_variance(torch.tensor(x), torch.tensor(xh)) == pytest.approx(1 - sse / sst)
    acts = np.maximum(rng.normal(size=(30, 7)), 0)
    acts[:, [1, 4]] = 0.0
    acts[3, 4] = 1e-3                                      # fires once: alive
    dead = [j for j in range(7) if all(acts[i, j] == 0 for i in range(30))]
    assert dead_fraction(torch.tensor(acts)) == pytest.approx(len(dead) / 7)


def test_same_seed_same_sae_and_file_round_trip(tmp_path):
    x, _ = sparse_data()
    a = train_sae(x, 6, steps=30, batch=64, seed=5)
    b = train_sae(x, 6, steps=30, batch=64, seed=5)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
    c = train_sae(x, 6, steps=30, batch=64, seed=6)
    assert not torch.equal(a.W_dec, c.W_dec)
    path = save_sae(a, tmp_path / "m.layer0.h.sae.safetensors")
    back = load_sae(path)
    assert torch.equal(back.W_enc, a.W_enc) and back.meta["seed"] == 5
    assert sae_path(tmp_path / "m.safetensors", 0, "c").name == "m.layer0.c.sae.safetensors"


def test_clear_errors(tmp_path):
    x, _ = sparse_data()
    with pytest.raises(SAEError, match="size 16"):
        train_sae(x, 4, steps=1).encode(torch.zeros(3, 5))
    with pytest.raises(SAEError, match="constant"):
        train_sae(torch.ones(10, 3), 4, steps=1)
    with pytest.raises(SAEError, match="not finite"):
        train_sae(torch.full((10, 3), float("nan")), 4, steps=1)
    with pytest.raises(SAEError, match="n_features"):
        train_sae(x, 0)
    with pytest.raises(SAEError, match="l1"):
        train_sae(x, 4, l1=-1.0)
    with pytest.raises(SAEError, match="No readable SAE"):
        load_sae(tmp_path / "missing.sae.safetensors")


def _tiny():
    model = build_model(ModelConfig("lstm", 6, 1, ("<unk>", *"abcd ")), seed=1)
    text = "abc dab cad bca " * 3
    states = trace(model, text)["layer0.h"]
    sae = train_sae(states.float(), 5, steps=40, batch=32, lr=1e-2, seed=0)
    return model, text, sae


def test_feature_ablation_hook_equals_an_explicit_recomputation():
    """Run the textbook stepper by hand, replacing h by h − a_f(h)·d_f + m·d_f after every step; the
    hooked trace's surprisal must match."""
    model, text, sae = _tiny()
    f, m = 2, 0.123
    hooked = trace(model, text, hooks={"layer0.h": feature_ablation_hook(sae, f, m)})
    p = {k: v.double() for k, v in model.textbook_params(0).items()}
    ids = model.vocab.encode(text).ids
    W, b, Wd, bd = (t.double() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    h, c = torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    logp = []
    for t in range(len(ids)):
        x = torch.nn.functional.one_hot(ids[t], model.config.vocab_size).double()
        step = textbook_step("lstm", p, x, h, c)
        h, c = step["h"], step["c"]
        a = torch.relu(W @ (h - bd) + b)
        h = h - a[f] * Wd[:, f] + m * Wd[:, f]
        logp.append(torch.log_softmax(h @ p["W_hq"] + p["b_q"], -1))
    want = torch.stack([-logp[t][ids[t + 1]] for t in range(len(ids) - 1)])
    np.testing.assert_allclose(hooked.surprisal.double().numpy(), want.numpy(), atol=1e-4)


def test_feature_names_and_refs():
    assert feature_name(0, "h", 17) == "L0 feat[17]" and feature_name(1, "c", 3) == "L1 featc[3]"
    assert feature_name(0, "h", 3) != unit_name(0, "gates.f", 3)       # not forget-gate unit 3 ("L0 f[3]")
    assert parse_feature_name("L0 f[17]") == (0, "h", 17) and parse_feature_name("L1 fc[3]") == (1, "c", 3)
    ref = FeatureRef(0, "h:sae", 17)
    assert ref.tensor_name == "layer0.h" and ref.name == "layer0.h:sae[17]" and ref.label == "L0 feat[17]"


def test_scorecard_on_features_is_deterministic_and_explains_bad_input():
    model, _, sae = _tiny()
    text = "abc dab cad bca dd aab " * 12
    basis = SAEBasis(sae, 0, "h", control_steps=20)
    kw = dict(controls=2, draws=3, seed=0, min_shift=20, max_causal=1, basis=basis)
    df = scorecard(model, text, "whitespace", **kw)
    assert len(df) == sae.n_features and set(df.state) == {"h:sae"} and list(df.unit) == list(range(5))
    assert set(df.verdict) <= {"causal", "correlational", "chance"}
    again = scorecard(model, text, "whitespace", **kw)
    assert df.drop(columns="verdict").equals(again.drop(columns="verdict")) and list(df.verdict) == list(again.verdict)
    assert df.attrs["controls"]["basis"]["sae_sha256"] == basis.key["sae_sha256"]
    with pytest.raises(SAEError, match="size 5|has no state"):
        scorecard(model, text, "whitespace", **{**kw, "basis": SAEBasis(SAE(*(torch.zeros(s) for s in
                  [(3, 5), (3,), (5, 3), (5,)])), 0, "h")})
    with pytest.raises(SAEError, match="has no state"):
        scorecard(model, text, "whitespace", **{**kw, "basis": SAEBasis(sae, 0, "gates.f")})


def test_hand_sae_on_the_latch_model_finds_the_causal_feature_and_matches_interventions():
    """An SAE built by hand on the hand model of test_scorecard: a_j = ReLU(h_j + 1) = h_j + 1,
    d_j = e_j, so ablating feature j is mean-ablating unit j (rnnviz.interventions.ablate)."""
    from tests.test_scorecard import H, hand_model, inside, mean_ablation_deltas, paren_text

    model, text = hand_model(), paren_text(1200, seed=1)
    eye = torch.eye(H)
    sae = SAE(eye.clone(), torch.zeros(H), eye.clone(), -torch.ones(H), {"l1": 0.01, "batch": 256, "lr": 1e-2})
    df = scorecard(model, text, {"inside": inside(text)}, min_shift=50, seed=3, controls=2, draws=8,
                   basis=SAEBasis(sae, 0, "h", control_steps=40))
    row = df[df.unit == 0].iloc[0]
    assert row.verdict == "causal", row.to_dict()
    assert (df[df.unit != 0].verdict != "causal").all()
    on, off = mean_ablation_deltas(model, text)
    assert on == pytest.approx(row.delta_loss, rel=1e-4, abs=1e-6)
    assert off == pytest.approx(row.delta_loss_elsewhere, rel=1e-4, abs=1e-6)


def test_top_contexts_and_comparison_by_hand(tmp_path):
    from rnnviz.units.dictionary import compare_verdicts, shipped_saes, top_contexts

    text = "abcdefghij"
    vals = torch.tensor([0, 3, 0, 5, 0, 0, 1, 0, 0, 3], dtype=torch.float32)
    got = top_contexts(vals, text, k=3, width=2)
    assert [(c.t, c.value, c.before, c.char, c.after) for c in got] == [
        (3, 5.0, "bc", "d", "ef"), (1, 3.0, "a", "b", "cd"), (9, 3.0, "hi", "j", "")]
    assert len(top_contexts(vals, text, k=100)) == 4           # only where the feature fires
    import pandas as pd
    units = pd.DataFrame({"feature": ["w"] * 3, "verdict": ["causal", "chance", "correlational"],
                          "effect": [0.1, 0.3, 0.2], "kind": "r", "stat": [0.1, -0.3, 0.2], "unit": [0, 1, 2],
                          "random_init_p95": 0.25})
    feats = pd.DataFrame({"feature": ["w"] * 2, "verdict": ["correlational", "correlational"],
                          "effect": [0.4, 0.5], "kind": "r", "stat": [0.4, 0.5], "unit": [0, 1],
                          "random_init_p95": 0.125})
    row = compare_verdicts(units, feats, lambda r: f"u{r.unit}", lambda r: f"f{r.unit}").iloc[0]
    assert (row["units causal"], row["units correlational"], row["features causal"],
            row["features correlational"]) == (1, 1, 0, 2)
    assert (row["units control p95"], row["features control p95"]) == ("0.250", "0.125")
    assert row["best unit"] == "u1 (r -0.300, chance)" and row["best feature"] == "f1 (r +0.500, correlational)"
    for name in ("m.safetensors", "m.layer0.h.sae.safetensors", "m.layer1.c.sae.safetensors",
                 "mm.layer0.h.sae.safetensors", "m.layer0.h.sae.json"):
        (tmp_path / name).write_bytes(b"")
    assert [(l, s, p.name) for l, s, p in shipped_saes(tmp_path / "m.safetensors")] == [
        (0, "h", "m.layer0.h.sae.safetensors"), (1, "c", "m.layer1.c.sae.safetensors")]


def test_report_splices_its_block_between_the_markers():
    from tools.sae_report import BEGIN, END, splice

    once = splice("# Title\n\ntext\n", "## SAE\nold")
    assert once.startswith("# Title\n\ntext\n") and once.count(BEGIN) == 1 and "old" in once
    twice = splice(once + "\nafter\n", "## SAE\nnew")
    assert "old" not in twice and "new" in twice and twice.count(END) == 1 and twice.rstrip().endswith("after")


def test_one_feature_and_feature_names_round_trip():
    from rnnviz.units.dictionary import feature_values
    x, _, sae = _fitted_small()
    for f in range(K):
        h = x[:40].double()
        want = torch.relu((h - sae.b_dec.double()) @ sae.W_enc.double()[f] + sae.b_enc.double()[f])
        got = feature_values(sae, {"layer0.h": x[:40]}, 0, "h", f)
        assert torch.allclose(got.double(), want, atol=1e-5)
    with pytest.raises(SAEError):
        feature_values(sae, {"layer0.h": x[:40]}, 0, "h", K)
    for layer, state, j in ((0, "h", 17), (2, "c", 0), (11, "c", 511)):
        assert parse_feature_name(feature_name(layer, state, j)) == (layer, state, j)
    for bad in ("L0 h[1]", "L0 fh[1]", "L0 feath[1]", "L0 f[01]", "L0 feat[01]", "f[1]", "feat[1]", None, 3):
        assert parse_feature_name(bad) is None


def _fitted_small():
    x, dirs = sparse_data()
    return x, dirs, train_sae(x, K, l1=0.05, steps=100, batch=512, lr=2e-2, seed=0)


def test_compare_follows_a_feature_in_the_models_that_have_its_sae():
    from rnnviz import compare as C
    a = build_model(ModelConfig("lstm", 6, 1, ("<unk>", *"abcd ")), seed=1)
    b = build_model(ModelConfig("gru", 6, 1, ("<unk>", *"abcd ")), seed=2)
    text = "abcab cba"
    cmp = C.compare(text, {"with": a, "without": b}, {"with": trace(a, text), "without": trace(b, text)})
    H = a.config.hidden_size
    g = torch.Generator().manual_seed(1)
    sae = SAE(torch.randn(5, H, generator=g), torch.randn(5, generator=g) * 0.1,
              torch.nn.functional.normalize(torch.randn(H, 5, generator=g), dim=0), torch.zeros(H))
    series = C.feature_series(cmp, 0, "h", 2, {"with": sae, "without": None})
    h = trace(a, text)["layer0.h"].double()
    want = torch.relu(h @ sae.W_enc.double()[2] + sae.b_enc.double()[2]).numpy()
    assert np.allclose(series[0].values, want, atol=1e-5)
    assert series[1].values is None and "no sparse autoencoder on layer0.h" in series[1].note
    assert "no L0 feat[7]" in C.feature_series(cmp, 0, "h", 7, {"with": sae})[0].note


def test_l1_warmup_and_lr_decay_are_checked_and_recorded():
    x, _ = sparse_data()
    s = train_sae(x, K, l1=0.05, steps=50, batch=256, lr=2e-2, seed=0, l1_warmup=0.1, lr_decay=0.2)
    assert (s.meta["l1_warmup"], s.meta["lr_decay"], s.meta["steps_done"]) == (0.1, 0.2, 50)
    again = train_sae(x, K, l1=0.05, steps=50, batch=256, lr=2e-2, seed=0, l1_warmup=0.1, lr_decay=0.2)
    assert torch.equal(s.W_enc, again.W_enc)                 # deterministic without a deadline
    plain = train_sae(x, K, l1=0.05, steps=50, batch=256, lr=2e-2, seed=0)
    assert not torch.equal(s.W_enc, plain.W_enc)             # the schedules change the fit
    for bad in ({"l1_warmup": -0.1}, {"lr_decay": 1.5}, {"l1_warmup": True}):
        with pytest.raises(SAEError):
            train_sae(x, K, steps=5, **bad)
