"""AppTest coverage of the core views (Hidden states, Predictions, Step-through, Generate) and the
shared sidebar: URL state, lecture mode, export, model card, bad input. No browser."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz import ModelConfig, Vocab, build_model, views

from .conftest import REPO, chart_specs, colored_texts, tiny_model
from .test_plots_states import decode

TIMEOUT = 300      # s per AppTest run: a busy machine makes a test slower, never red
VOCAB_TEXT = "the time machine by h. g. wells\nabcdefghijklmnopqrstuvwxyz,;:'!?-"
HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("core_views_ckpts")
    for name, cell, layers, hidden in (("timemachine-lstm", "lstm", 2, 12), ("timemachine-gru", "gru", 1, 8),
                                       ("timemachine-rnn", "rnn_tanh", 1, 20), ("timemachine-gru-d2l", "gru_d2l", 1, 8)):
        rnnviz.save_checkpoint(tiny_model(cell, layers, hidden, text=VOCAB_TEXT),
                               d / f"{name}.safetensors", {"corpus": "test", "val_loss": 1.25})
    tokens = tuple(Vocab.from_text("abcdefghijklmnopqrstuvwxyz ").tokens)
    d2l = build_model(ModelConfig("lstm", 8, 1, tokens, preprocessing="d2l"), seed=0)
    rnnviz.save_checkpoint(d2l, d / "d2l-lstm.safetensors", {"corpus": "timemachine"})
    return d


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    st.cache_data.clear()        # other test modules cache other models under the same names
    st.cache_resource.clear()
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)


def open_view(at: AppTest, page: str | None = None, **query) -> AppTest:
    """Open a view with URL parameters (``hs__unit=`` stands for ``hs.unit``), as a copied link."""
    params = {k.replace("__", "."): v for k, v in query.items()}
    at.query_params.update(params)
    if page:
        at.run()                 # st.navigation registers the pages (and their url_path) on a run
        at.switch_page(page)
        at.query_params.update(params)   # the first view dropped the other views' keys
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return chart_specs(at)


def html_bodies(at: AppTest) -> list[str]:
    """The page's HTML blocks, without the style-only blocks (ui.sidebar.LECTURE_CSS in lecture
    mode): see style_bodies."""
    return [b for b in all_html(at) if not b.lstrip().startswith("<style>")]


def all_html(at: AppTest) -> list[str]:
    return [el.proto.body for el in at.get("html")]


def style_bodies(at: AppTest) -> list[str]:
    return [b for b in all_html(at) if b.lstrip().startswith("<style>")]


def model_and_trace(ckpt_dir, name: str, text: str):
    model = rnnviz.load_model(str(ckpt_dir / f"{name}.safetensors"))
    return model, rnnviz.trace(model, text)


# --------------------------------------------------------------------------- hidden states
def test_hidden_states_default_heatmap_is_the_trace(app, ckpt_dir):
    text = "aa  aa\nbb"
    at = open_view(app, text=text)
    assert at.title[0].value == "Hidden states"
    figs = [f for f in charts(at) if f["layout"]["meta"]["chart"] != "hs_layers"]  # all layers: test_app_layers
    assert len(figs) == 1                                    # short text: no overview
    heat = figs[0]["data"][0]
    assert heat["type"] == "heatmap" and heat["zmid"] == 0
    assert len(heat["x"]) == len(text)                       # one column per char, repeats too
    _, tr = model_and_trace(ckpt_dir, "timemachine-lstm", text)
    # Default order: by pattern (bands of similar units, issue 16); rows follow the y labels.
    assert at.query_params["hs.order"] == "pattern"
    rows = [int(u.split("[")[1].rstrip("]")) for u in heat["y"]]
    assert sorted(rows) == list(range(tr["layer0.h"].shape[1]))
    assert rows == views.unit_order(tr["layer0.h"], "pattern")
    assert np.allclose(decode(heat["z"]), tr["layer0.h"].numpy().T[rows], atol=1e-6)
    assert at.query_params["hs.what"] == "h" and at.query_params["hs.layer"] == "0"
    assert len(colored_texts(at)[-1]["chars"]) == len(text)  # the unit's coloured text
    assert figs[0]["layout"]["meta"]["chart"] == "hs_heatmap"


def test_hidden_states_long_text_window_overview_and_url(app, ckpt_dir):
    text = ("the time machine by h. g. wells\n" * 40)[:1000]
    at = open_view(app, text=text, hs__start="500", hs__order="variance", hs__layer="1")
    figs = [f for f in charts(at) if f["layout"]["meta"]["chart"] != "hs_layers"]
    stacked = [f for f in charts(at) if f["layout"]["meta"]["chart"] == "hs_layers"]
    assert stacked and stacked[0]["data"][0]["x"][0].startswith("500:")   # same window, every layer
    assert [f["data"][0]["type"] for f in figs] == ["image", "heatmap"]
    heat = figs[1]["data"][0]
    assert len(heat["x"]) == 60 and heat["x"][0].startswith("500:")
    _, tr = model_and_trace(ckpt_dir, "timemachine-lstm", text)
    order = views.unit_order(tr["layer1.h"], "variance")
    assert heat["y"] == [f"L1 h[{u}]" for u in order]
    assert np.allclose(decode(heat["z"]), tr["layer1.h"].numpy()[500:560][:, order].T, atol=1e-6)
    assert at.slider(key="hs_start").value == 500
    assert at.query_params["hs.start"] == "500"
    at.slider(key="hs_start").set_value(10).run()
    assert at.query_params["hs.start"] == "10"
    assert charts(at)[1]["data"][0]["x"][0].startswith("10:")


def test_hidden_states_cell_state_and_gates(app):
    at = open_view(app, text="hello there, hello")
    at.radio(key="hs_kind").set_value("c").run()
    assert not at.exception
    assert charts(at)[0]["data"][0]["colorbar"]["title"]["text"] == "C"
    at.radio(key="hs_kind").set_value("gates").run()
    assert not at.exception
    figs = charts(at)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert titles[0].startswith("Gate saturation")
    assert sum(t.startswith("gate ") for t in titles) == 3   # I, F, O
    table = at.dataframe[0].value
    assert list(table["gate"]) == ["i", "f", "o"]


def test_hidden_states_gru_gates_and_rnn_has_none(app):
    at = open_view(app, text="hello", ckpt="timemachine-gru", hs__what="gates")
    assert sum(f["layout"]["title"]["text"].startswith("gate ") for f in charts(at)) == 2
    at2 = open_view(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT),
                    text="hello", ckpt="timemachine-rnn", hs__what="gates")   # invalid → h
    assert at2.radio(key="hs_kind").value == "h"


def test_hidden_states_unit_pick_colours_the_text(app, ckpt_dir):
    text = "ab<b>cd"
    at = open_view(app, text=text, hs__unit="3")
    assert at.selectbox(key="hs_unit").value == 3
    shown = colored_texts(at)[-1]
    assert shown["chars"] == list(text)                      # characters travel as text, not HTML
    assert shown["caption"].startswith("L0 h[3] ")                # the unit's one name (#28)


# --------------------------------------------------------------------------- predictions
def test_predictions_numbers_tables_and_unknowns(app, ckpt_dir):
    text = "hello ZZ world"                    # Z is not in the vocabulary
    at = open_view(app, "app_pages/predictions.py", text=text)
    _, tr = model_and_trace(ckpt_dir, "timemachine-lstm", text)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cross-entropy (nats/char)"] == f"{tr.cross_entropy:.3f}"
    assert metrics["Perplexity"] == f"{tr.perplexity:.2f}"
    assert metrics["Bits per character"] == f"{tr.bits_per_char:.3f}"
    assert metrics["Unknown characters"] == "2"
    assert any("<unk>" in w.value and "step 6" in w.value for w in at.warning)
    figs = charts(at)
    assert len(figs) == 3
    topk, heat, bar = figs
    assert len(topk["data"][0]["x"]) == len(text) and topk["data"][0]["y"] == [f"#{i}" for i in range(1, 6)]
    assert np.allclose(decode(heat["data"][0]["z"]), tr.probs.numpy().T, atol=1e-6)
    assert np.isclose(max(decode(bar["data"][0]["y"])), float(tr.probs[0].max()), atol=1e-6)
    assert colored_texts(at)[0]["marked"] == [6, 7]          # the <unk> characters, underlined


def test_predictions_step_from_url_and_d2l_note(app):
    at = open_view(app, "app_pages/predictions.py", text="The Time, Machine!", ckpt="d2l-lstm",
                   pr__step="4", pr__k="3")
    assert at.slider(key="pr_step").value == 4
    assert "step 4" in charts(at)[2]["layout"]["title"]["text"]
    assert len(charts(at)[0]["data"][0]["y"]) == 3
    assert any("d2l" in c.value for c in at.caption)
    assert any("preprocessing" in e.label for e in at.expander)


def test_predictions_single_character(app):
    at = open_view(app, "app_pages/predictions.py", text="h")
    assert {m.label: m.value for m in at.metric}["Cross-entropy (nats/char)"] == "—"


# --------------------------------------------------------------------------- step-through
@pytest.mark.parametrize("ckpt", ["timemachine-lstm", "timemachine-gru", "timemachine-rnn", "timemachine-gru-d2l"])
def test_step_through_shows_the_equation_with_the_vectors(app, ckpt_dir, ckpt):
    text = "hello world"
    at = open_view(app, "app_pages/step_through.py", text=text, ckpt=ckpt, st__t="4")
    assert at.slider(key="st_t").value == 4
    model, tr = model_and_trace(ckpt_dir, ckpt, text)
    latex = " ".join(l.value for l in at.latex)
    out = "Q_t" if ckpt == "timemachine-lstm" else "O_t"    # O_t is the LSTM's output gate
    assert f"{out} = H_t W_{{hq}} + b_q" in latex
    if ckpt == "timemachine-lstm":
        assert "O_t = H_t W" not in latex and any("Q_t" in c.value for c in at.caption)
    figs = {f["layout"]["meta"]["chart"]: f for f in charts(at)}
    assert set(figs) == {"st_onehot", "st_terms", "st_softmax"}
    onehot = decode(figs["st_onehot"]["data"][0]["z"])
    assert onehot.sum() == 1 and onehot[0, int(tr.ids[4])] == 1
    terms = figs["st_terms"]["data"][0]
    assert terms["x"][-1] == "H_t"
    h = tr["layer0.h"][4].numpy()
    units = [int(u.split("[")[1].rstrip("]")) for u in terms["y"]]
    assert len(units) == min(16, model.config.hidden_size)
    assert np.allclose(decode(terms["z"])[:, -1], h[units], atol=1e-5)
    assert any("matches the traced H_t" in c.value for c in at.caption)
    if ckpt == "timemachine-gru":
        assert "R_t \\odot (H_{t-1} W_{hh} + b_{hh})" in latex
    if ckpt == "timemachine-gru-d2l":         # the book's own equation, and its own caption
        assert "(R_t \\odot H_{t-1}) W_{hh} + b_h" in latex
        assert "(R_t ⊙ H_{t-1}) W_hh" in terms["x"]
        assert any("d2l §10.2" in c.value for c in at.caption)
    assert at.query_params["st.t"] == "4"


def test_step_through_layer_two_reads_layer_one(app):
    at = open_view(app, "app_pages/step_through.py", text="hello", ckpt="timemachine-lstm",
                   st__layer="1", st__t="2")        # Step-through opens on the RNN unless told
    keys = {f["layout"]["meta"]["chart"] for f in charts(at)}
    assert "st_input" in keys and "st_onehot" not in keys


# --------------------------------------------------------------------------- generate
def test_generate_is_seeded_and_shows_probabilities(app, ckpt_dir):
    at = open_view(app, "app_pages/generate.py", gen__prefix="the time", gen__len="30", gen__seed="7",
                   gen__temp="0.8")
    model = rnnviz.load_model(str(ckpt_dir / "timemachine-lstm.safetensors"))
    from rnnviz.generate import generate
    ref = generate(model, "the time", 30, temperature=0.8, top_k=None, seed=7)
    bar = charts(at)[0]["data"][0]
    assert np.allclose(decode(bar["y"]), ref.probs, atol=1e-6)
    shown = colored_texts(at)[0]
    assert len(shown["chars"]) == len("the time") + 30
    assert shown["bg"][:8] == [""] * 8 and all(shown["bg"][8:])   # the prefix is left uncoloured
    assert {m.label: m.value for m in at.metric}["Generated characters"] == "30"


def test_generate_rejects_empty_prefix_without_trace(app):
    at = open_view(app, "app_pages/generate.py")
    at.text_area(key="gen_prefix").set_value("").run()
    assert not at.exception
    assert any("Cannot generate" in i.value for i in at.info)


def test_generate_prefix_keeps_its_newlines(app):
    """#28: the prefix is read as typed, newlines included (st.text_input dropped them)."""
    at = open_view(app, "app_pages/generate.py")
    at.text_area(key="gen_prefix").set_value("ab\ncd").run()
    assert not at.exception
    shown = colored_texts(at)[-1]
    chars = shown["chars"][:5]
    assert chars[:2] == ["a", "b"] and chars[2].endswith("\n") and chars[3:] == ["c", "d"]  # "⏎" + the newline
    assert at.query_params["gen.prefix"] in ("ab\ncd", ["ab\ncd"])


# --------------------------------------------------------------------------- bad input, sidebar
@pytest.mark.parametrize("page", [None, "app_pages/predictions.py", "app_pages/step_through.py"])
def test_empty_text_is_a_message_not_a_trace(app, page):
    at = open_view(app, page)
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert any("empty" in i.value for i in at.info)
    assert not chart_specs(at)


@pytest.mark.parametrize("page", [None, "app_pages/predictions.py", "app_pages/step_through.py"])
def test_huge_paste_is_capped_with_a_notice(app, page):
    at = open_view(app, page)
    at.text_area(key="text").set_value("abc " * 2000).run()
    assert not at.exception
    assert any("8,000 characters" in w.value and "first 5,000" in w.value for w in at.warning)
    assert len(at.query_params["text"]) == 2000
    assert chart_specs(at)


@pytest.mark.parametrize("page", [None, "app_pages/predictions.py", "app_pages/step_through.py",
                                  "app_pages/generate.py"])
def test_hostile_text_is_escaped_in_every_html_block(app, page):
    at = open_view(app, page, text=HOSTILE, gen__prefix=HOSTILE)
    for body in html_bodies(at):
        assert "<script" not in body and "<img" not in body, body[:200]


def test_lecture_mode_from_url_enlarges_and_hides_explanations(app):
    at = open_view(app, lecture="1")
    assert at.toggle(key="lecture").value is True
    css = [b for b in style_bodies(at) if "st-key-explain-" in b]
    assert css and "font-size" in css[0]
    assert at.query_params["lecture"] == "1"
    at.toggle(key="lecture").set_value(False).run()
    assert "lecture" not in at.query_params
    assert not [b for b in style_bodies(at) if "st-key-explain-" in b or "font-size" in b]
    # No page CSS on Streamlit's internal attributes (data-testid, data-stale) in either mode.
    assert not [b for b in style_bodies(at) if "data-testid" in b or "data-stale" in b]


def test_model_card_and_export(app):
    at = open_view(app)
    card = at.sidebar.table[0].value
    values = dict(zip(card[""], card["value"]))
    assert values["cell"] == "lstm" and values["layers"] == "2" and values["H"] == "12"
    assert values["val loss (nats/char)"] == "1.25" and values["corpus"] == "test"
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("Trace CSV" in l for l in labels) and any("Probabilities CSV" in l for l in labels)


def test_other_views_url_keys_are_dropped(app):
    at = open_view(app, "app_pages/predictions.py", hs__unit="3", pr__k="2")
    assert "hs.unit" not in at.query_params
    assert at.query_params["pr.k"] == "2"


def test_replaced_checkpoint_is_never_served_stale(app, ckpt_dir):
    import os
    path = ckpt_dir / "swap-lstm.safetensors"
    text = "hello there"
    first = tiny_model("lstm", 1, 6, text=VOCAB_TEXT, seed=1)
    rnnviz.save_checkpoint(first, path, {"corpus": "a"})
    at = open_view(app, text=text, ckpt="swap-lstm", hs__order="trained")
    z1 = decode(charts(at)[0]["data"][0]["z"])
    assert np.allclose(z1, rnnviz.trace(first, text)["layer0.h"].numpy().T, atol=1e-6)
    second = tiny_model("lstm", 1, 6, text=VOCAB_TEXT, seed=2)      # retrained under the same name
    rnnviz.save_checkpoint(second, path, {"corpus": "b"})
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    at.run()
    z2 = decode(charts(at)[0]["data"][0]["z"])
    assert np.allclose(z2, rnnviz.trace(second, text)["layer0.h"].numpy().T, atol=1e-6)
    path.unlink()
