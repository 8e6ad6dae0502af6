"""The Units view's "dictionary features" switch under AppTest, on a tiny LSTM with an SAE trained
beside it (rnnviz.units.sae_train) and its controls made by tools.sae_report: the verdict table of
the features, the units-vs-features line and a feature's top-activating contexts, which must be the
steps where the SAE's encoder (recomputed here) is largest."""

from __future__ import annotations

import numpy as np
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
from tests.conftest import REPO, chart_specs as charts, tiny_model
from tests.test_app_units import CORPUS, texts
from tests.test_plots_states import decode


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
    assert all(f.startswith("L0 feat[") for f in verdicts.feature)
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
    assert at.selectbox(key="hs_sae_feat").format_func(at.selectbox(key="hs_sae_feat").value).startswith("L0 feat[")


# ---------------------------------------------------------------- a pinned feature (#29 "wherever a unit is")
TEXT = "the time machine by h g wells"


def _feature_by_hand(model, sae, text: str, f: int) -> torch.Tensor:
    """a_f(H_t) = ReLU(W_enc[f]·(H_t − b_dec) + b_enc[f]) in float64 from the SAE's weights."""
    h = trace(model, text)[act_name(0, "h")].double()
    return torch.relu((h - sae.b_dec.double()) @ sae.W_enc.double()[f] + sae.b_enc.double()[f])


def _panel(at, name: str) -> str:
    bodies = [el.proto.body for el in at.get("html") if f"★ {name} = " in el.proto.body]
    assert bodies, f"no pinned panel for {name}"
    return bodies[0]


def _app(page=None, **query):
    from tests.test_app_views import open_view
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    return open_view(at, page, **query)


def test_a_pinned_feature_is_followed_on_hidden_states_step_through_and_units(sae_env):
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()
    model, sae, _ = sae_env
    f = 3
    a = _feature_by_hand(model, sae, TEXT, f)
    peak = int(a.argmax())
    at = _app(text=TEXT, unit=f"L0 f[{f}]")             # the old form of a feature link
    assert at.query_params["unit"] in (f"L0 feat[{f}]", [f"L0 feat[{f}]"])     # rewritten to its one name
    assert any(f"Pinned feature L0 feat[{f}]" in m.value for m in at.markdown)
    panel = _panel(at, f"L0 feat[{f}]")          # its coloured text: the encoder on the traced H_t
    assert f"step {peak}: " in panel and f"{float(a[peak]):+.4f}" in panel
    assert at.selectbox(key="hs_sae_feat").value == f          # the feature explorer opens on it
    assert any(b.label == f"Unpin L0 feat[{f}]" for b in at.button)
    heat = next(c for c in charts(at) if c["layout"].get("meta", {}).get("chart") == "hs_features")
    assert any("★ pinned" in t and f"L0 feat[{f}]" in t for t in heat["layout"]["yaxis"]["ticktext"])
    row = heat["data"][0]["y"].index(f"L0 feat[{f}]")
    np.testing.assert_allclose(decode(heat["data"][0]["z"])[row], a.numpy(), atol=1e-5)

    at.switch_page("app_pages/step_through.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    line = next(m.value for m in at.markdown if f"Pinned feature L0 feat[{f}]" in m.value)
    assert f"at step 0: a = **{float(a[0]):.3f}**" in line

    at.switch_page("app_pages/units.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"{float(a[peak]):+.4f}" in _panel(at, f"L0 feat[{f}]")
    assert at.radio(key="u_basis").value == "dictionary features"      # Units opens on its SAE


def test_a_feature_pins_from_its_button_and_a_bad_feature_link_is_dropped(sae_env):
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _app(text=TEXT, unit="L0 feat[12]")                          # the SAE has features 0…11
    assert "unit" not in at.query_params
    line = next(c.value for c in at.caption if "Ignored from the link" in c.value)
    assert "unit=L0 feat" in line and "or a dictionary feature of its SAEs (L0 feat[0]…[11])" in line, line
    at = _app(text=TEXT, unit="L0 featc[1]")                           # no SAE on C_t shipped
    assert "unit" not in at.query_params
    at.selectbox(key="hs_sae_feat").set_value(5).run()
    at.button(key="hs_sae_pin").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["unit"] in ("L0 feat[5]", ["L0 feat[5]"])
    assert any("Pinned feature L0 feat[5]" in m.value for m in at.markdown)


def test_hidden_states_names_the_features_that_pass(sae_env):
    """The sidecar's verdicts (what tools.sae_report stores) name feature rows, bold, saying they are
    features; the units' heatmap is unchanged."""
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()
    model, sae, corpora = sae_env
    path = sae_path(corpora.parent / "ckpts" / "timemachine-lstm.safetensors", 0, "h")     # sae_env's
    sample, source = scorecard_sample(model, corpora_dir=corpora)
    df = scorecard(model, sample, ["whitespace"], max_causal=3, basis=SAEBasis(sae, 0, "h"))
    write_controls(df.attrs["controls"], path, source,
                   {"whitespace": {"layer0.h:sae[7]": "causal"}, "vowel": {"layer0.h:sae[2]": "correlational"}})
    at = _app(text=TEXT)
    heat = next(c for c in charts(at) if c["layout"].get("meta", {}).get("chart") == "hs_features")
    assert heat["data"][0]["y"] == ["L0 feat[7]", "L0 feat[2]"]                   # causal first
    assert heat["layout"]["yaxis"]["ticktext"] == ["<b>L0 feat[7] · whitespace · causal</b>",
                                                   "<b>L0 feat[2] · vowel · correlational</b>"]
    assert "features, not units" in heat["layout"]["title"]["text"].replace("<br>", " ")       # a wrapped title
    a = _feature_by_hand(model, sae, TEXT, 7)
    np.testing.assert_allclose(decode(heat["data"][0]["z"])[0], a.numpy(), atol=1e-5)


def test_compare_draws_the_pinned_feature_in_the_model_with_its_sae(sae_env):
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()
    model, sae, corpora = sae_env
    save_checkpoint(tiny_model("gru", hidden=8, text=CORPUS), corpora.parent / "ckpts" / "timemachine-gru.safetensors",
                    {"corpus": "tinycorpus", "val_fraction": 0.1})
    at = _app("app_pages/compare.py", text=TEXT, unit="L0 feat[3]", cmp__models="timemachine-lstm,timemachine-gru")
    fig = next(c for c in charts(at) if c["layout"].get("meta", {}).get("chart") == "cmp_pinned")
    assert [d["name"] for d in fig["data"]] == ["timemachine-lstm"]
    np.testing.assert_allclose(decode(fig["data"][0]["y"]), _feature_by_hand(model, sae, TEXT, 3).numpy(), atol=1e-5)
    assert any("timemachine-gru has no sparse autoencoder on layer0.h" in i.value for i in at.info)
