"""The Units view's "dictionary features" switch under AppTest, on a tiny LSTM with an SAE trained
beside it (rnnviz.units.sae_train) and its controls made by tools.sae_report: the verdict table of
the features, the units-vs-features line and a feature's top-activating contexts, which must be the
steps where the SAE's encoder (recomputed here) is largest."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from rnnviz import save_checkpoint
from rnnviz.checkpoint import load_model
from rnnviz.names import act_name
from rnnviz.trace import trace
from rnnviz.units import scorecard
from rnnviz.units.basis import SAEBasis
from rnnviz.units.sae import sae_path, save_sae
from rnnviz.units.sae_train import train_for_checkpoint
from rnnviz.units.scorecard_cache import scorecard_sample, write_controls
from tests.conftest import REPO, tiny_model
from tests.test_app_units import CORPUS, texts


@pytest.fixture
def sae_env(tmp_path, monkeypatch):
    ckpts, corpora = tmp_path / "ckpts", tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "tinycorpus.txt").write_text(CORPUS, encoding="utf-8")
    save_checkpoint(tiny_model("lstm", hidden=8, text=CORPUS), ckpts / "timemachine-lstm.safetensors",
                    {"corpus": "tinycorpus", "val_fraction": 0.1})
    model = load_model("timemachine-lstm", ckpts)
    sae = train_for_checkpoint(model, 0, "h", 12, l1=0.01, steps=60, batch=256, lr=1e-2, seed=0,
                               max_seconds=60, corpora_dir=corpora)
    save_sae(sae, sae_path(ckpts / "timemachine-lstm.safetensors", 0, "h"))
    sample, source = scorecard_sample(model, corpora_dir=corpora)      # the controls tools.sae_report stores
    df = scorecard(model, sample, ["whitespace"], max_causal=3, basis=SAEBasis(sae, 0, "h"))
    write_controls(df.attrs["controls"], sae_path(ckpts / "timemachine-lstm.safetensors", 0, "h"), source)
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(corpora))
    return model, sae, corpora


def test_dictionary_features_switch_shows_verdicts_and_top_contexts(sae_env):
    model, sae, corpora = sae_env
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.switch_page("app_pages/units.py")
    at.query_params["units.tab"] = "Unit finder"
    at.query_params["units.feat"] = "whitespace"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.radio(key="u_basis").set_value("dictionary features").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at)
    assert "Sparse autoencoder on layer0.h" in shown and "dictionary features for" in shown, shown
    assert "units of layer0.h" in shown
    tables = [d.value for d in at.dataframe]
    verdicts = next(t for t in tables if "feature" in t.columns and "verdict" in t.columns)
    assert set(verdicts.verdict) <= {"causal", "correlational", "chance"}
    assert all(f.startswith("L0 f[") for f in verdicts.feature)
    f = at.selectbox(key="u_sae_feat").value
    sample, _ = scorecard_sample(model, corpora_dir=corpora)
    h = trace(model, sample, preprocess_text=False)[act_name(0, "h")].double()
    a = torch.relu((h - sae.b_dec.double()) @ sae.W_enc.double().T + sae.b_enc.double())[:, f]
    ctx = next(t for t in tables if "activation" in t.columns)
    want = sorted(range(len(sample)), key=lambda t: (-float(a[t]), t))[:len(ctx)]
    assert list(ctx.step) == want
    # Hidden states: the same SAE's feature as coloured text on the sidebar text, passing ones first
    at.switch_page("app_pages/hidden_states.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "One dictionary feature over the text" in texts(at)
    assert at.selectbox(key="hs_sae_feat").format_func(at.selectbox(key="hs_sae_feat").value).startswith("L0 f[")
