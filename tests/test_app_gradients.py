"""AppTest coverage of the Gradients view (no browser; tiny checkpoints in a tmp dir)."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

import rnnviz

from .conftest import app_on, REPO, SMALL_TEXT, chart_specs, tiny_model

TIMEOUT = 300      # s per AppTest run: a busy machine makes a test slower, never red
PAGE = "app_pages/gradients.py"


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("grad_ckpts")
    for name, cell, layers in (("timemachine-lstm", "lstm", 1), ("timemachine-rnn", "rnn_tanh", 1),
                               ("timemachine-gru", "gru", 2), ("relu2", "rnn_relu", 2)):
        rnnviz.save_checkpoint(tiny_model(cell, layers, 8), d / f"{name}.safetensors", {"corpus": "test"})
    return d


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    return app_on(ckpt_dir, monkeypatch)


def _open(at: AppTest, **query) -> AppTest:
    """Open the view with URL parameters; ``gr_x=`` stands for the view's ``gr.x`` key."""
    for k, v in query.items():
        at.query_params[k.replace("gr_", "gr.", 1)] = v
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> list[dict]:
    return chart_specs(at)


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_default_view_shows_curve_spectrum_reading_chain_and_map(app):
    at = _open(app)
    charts = _charts(at)
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert len(charts) == 5, titles
    assert titles[0].startswith("Gradient norm vs distance")
    assert charts[0]["layout"]["yaxis"]["type"] == "log"
    assert any("Eigenvalues of W_hc" in t for t in titles)          # the LSTM's candidate block
    assert any(t.startswith("Jacobian chain") for t in titles)
    assert any(t.startswith("Gradient map") for t in titles)
    md = _markdown(at)
    assert "Reading." in md and "per step" in md and "spectral radius" in md
    assert at.query_params["gr.loss"] == "last" and at.query_params["gr.scale"] == "1.0"


def test_url_knobs_reproduce_the_view(app):
    at = _open(app, ckpt="timemachine-rnn", gr_loss="step", gr_step="10", gr_scale="0.5", gr_trunc="4",
               gr_clip="0.01", gr_clipv="0.001", gr_act="relu")
    assert at.selectbox(key="g_loss").value == "step"
    assert at.number_input(key="g_step").value == 10
    assert at.slider(key="g_scale").value == 0.5
    assert at.selectbox(key="g_act").value == "relu"
    captions = "\n".join(c.value for c in at.caption)
    assert "W_hh × 0.5" in captions and "φ = relu" in captions and "k = 4" in captions
    labels = [m.label for m in at.metric]
    assert "‖g‖ before clipping" in labels
    md = _markdown(at)
    assert "Truncated BPTT (k = 4)" in md and "clipping" in md
    curve = _charts(at)[0]
    assert "step s = 10" in curve["layout"]["title"]["text"].replace("<br>", " ")
    # changing a knob writes it back into the URL
    at.slider(key="g_scale").set_value(2.0).run()
    assert not at.exception
    assert at.query_params["gr.scale"] == "2.0"


def test_gated_cells_disable_the_activation_swap_and_offer_blocks(app):
    at = _open(app, ckpt="timemachine-gru", gr_act="relu", gr_layer="1")
    assert at.selectbox(key="g_act").disabled
    assert at.selectbox(key="g_block").options == ["W_hr", "W_hz", "W_hh"]
    assert any("layer 1" in c["layout"]["title"]["text"] for c in _charts(at))
    assert not any("φ = relu" in c.value for c in at.caption)


def test_overflow_is_shown_not_crashed(app):
    text = (SMALL_TEXT * 40)[:1900]
    at = _open(app, ckpt="relu2", text=text, gr_scale="5.0", gr_len="1900")
    titles = " ".join(c["layout"]["title"]["text"] for c in _charts(at))
    assert "NaN" in titles or "inf" in titles
    assert "overflowed" in _markdown(at)


def test_bad_url_values_fall_back_and_short_text_is_explained(app):
    at = _open(app, gr_scale="abc", gr_loss="<script>", gr_trunc="-3", gr_layer="9")
    assert at.slider(key="g_scale").value == 1.0
    assert at.selectbox(key="g_loss").value == "last"
    assert at.number_input(key="g_trunc").value == 0
    at2 = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at2 = _open(at2, text="a")
    assert any("at least 2 characters" in i.value for i in at2.info)
    assert not _charts(at2)


def test_the_shared_model_is_never_mutated(app, ckpt_dir):
    at = _open(app, ckpt="timemachine-rnn", gr_scale="3.0", gr_act="relu", gr_trunc="2", gr_clip="0.5")
    from app_pages.ui import cache
    cached = cache.shipped_model("timemachine-rnn")
    fresh = rnnviz.load_model(ckpt_dir / "timemachine-rnn.safetensors")
    assert cached.config.cell == "rnn_tanh"
    for (k, a), (_, b) in zip(cached.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), k


def test_lesson_preset_links_open_the_what_if(app):
    from rnnviz.lesson import GRADIENT_PRESETS
    params = GRADIENT_PRESETS["exploding (W_hh × 2)"] if "exploding (W_hh × 2)" in GRADIENT_PRESETS \
        else list(GRADIENT_PRESETS.values())[-1]
    for k, v in params.items():
        app.query_params[k] = v
    at = _open(app, ckpt="timemachine-rnn")
    assert at.slider(key="g_scale").value == float(params["gr.scale"])
    assert any(f"W_hh × {float(params['gr.scale']):g}" in c.value for c in at.caption)


def _title_lines(text: str) -> list[str]:
    import re
    return [re.sub(r"</?sup>", "", line) for line in text.split("<br>")]


def test_titles_in_narrow_columns_wrap_instead_of_being_cut(app):
    """Plotly cuts a long title at the chart's edge: in the [3, 2] columns, and more so with lecture
    mode's larger type, titles are wrapped at spaces (every word kept), the chart growing to fit."""
    wide = _charts(_open(app))
    lecture = _charts(_open(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT), lecture="1"))
    for normal, big in zip(wide, lecture):
        words = " ".join(_title_lines(normal["layout"]["title"]["text"])).split()
        assert " ".join(_title_lines(big["layout"]["title"]["text"])).split() == words
    eig = next(c for c in lecture if "Eigenvalues" in c["layout"]["title"]["text"])
    lines = _title_lines(eig["layout"]["title"]["text"])
    assert len(lines) >= 3 and max(len(l) for l in lines) <= 40, lines
    assert eig["layout"]["margin"]["t"] >= 38 + 18 * 1.4 * len(lines) * 0.9
