"""Hostile text (issue 7): empty, one character, a 100,000-character paste, characters outside the
vocabulary, emoji and combining marks, NUL and control characters, right-to-left text, HTML and
script payloads -- through ``rnnviz.trace`` and through every page of app.py's navigation (AppTest).
"""

from __future__ import annotations

import math
import re

import pytest
import torch

import rnnviz
from rnnviz import MAX_TRACE_CHARS, TextError
from rnnviz.plots.common import display_char

from app_pages.ui.params import VIEWS

from . import hostile
from .conftest import REPO, chart_specs, tiny_model

TEXTS = hostile.HOSTILE_TEXTS
PAGES = [v.page for v in VIEWS]   # every view (app_pages/ui/params.py)
#: Opening tags / URLs a payload would need to run; none may reach the page's raw HTML unescaped.
_ACTIVE_HTML = re.compile(r"<\s*(script|img|svg|iframe|object|embed)\b|</\s*textarea|"
                          r"href\s*=\s*[\"']?\s*javascript:", re.IGNORECASE)


# --------------------------------------------------------------------------- rnnviz.trace
@pytest.fixture(scope="module", params=["lstm-2L", "gru-1L", "rnn_relu-1L"])
def model(request):
    cell, layers = request.param.split("-")
    return tiny_model(cell, int(layers[0]))


def test_empty_text_is_refused_with_a_message(model):
    with pytest.raises(TextError, match="empty"):
        rnnviz.trace(model, "")
    with pytest.raises(TextError, match="must be a string"):
        rnnviz.trace(model, None)  # type: ignore[arg-type]


def test_one_character_has_no_prediction_but_a_state(model):
    tr = rnnviz.trace(model, "t")
    assert len(tr) == 1 and tr.chars == ["t"]
    assert tr["layer0.h"].shape == (1, model.config.hidden_size)
    assert tr.surprisal.numel() == 0 and math.isnan(tr.cross_entropy)
    assert torch.isfinite(tr.probs).all() and torch.allclose(tr.probs.sum(-1), torch.ones(1))


def test_cap_is_documented_and_exact():
    model = tiny_model("lstm", 2)
    text = TEXTS["paste-100k"]
    assert len(text) == MAX_TRACE_CHARS == 100_000
    tr = rnnviz.trace(model, text, gates=False)
    assert len(tr) == MAX_TRACE_CHARS and "".join(tr.chars) == text
    with pytest.raises(TextError, match=r"100,001 characters; at most 100,000"):
        rnnviz.trace(model, text + "x")


@pytest.mark.parametrize("name", [n for n in TEXTS if n not in ("empty", "paste-100k")])
def test_hostile_text_is_traced_losslessly(model, name):
    text = TEXTS[name]
    tr = rnnviz.trace(model, text)
    # One step per code point, nothing dropped, merged or reordered (combining marks, ZWJ, NUL...).
    assert tr.chars == list(text) and len(tr) == len(text)
    vocab = model.vocab
    assert tr.unknown_positions == tuple(t for t, ch in enumerate(text) if ch not in vocab)
    assert all(int(tr.ids[t]) == 0 for t in tr.unknown_positions)
    for key in tr.names():
        assert torch.isfinite(tr[key]).all(), key
    # Invisible characters get a visible label (never an empty or raw control glyph).
    for ch in text:
        label = display_char(ch)
        assert label and not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in label), repr(ch)


def test_out_of_vocabulary_characters_are_marked(model):
    text = TEXTS["out-of-vocabulary"]
    tr = rnnviz.trace(model, text)
    assert tr.unknown_positions and tr.summary()["unknown"] == len(tr.unknown_positions)
    assert set(text[t] for t in tr.unknown_positions) == {ch for ch in text if ch not in model.vocab}


# --------------------------------------------------------------------------- every page (AppTest)
@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return hostile.write_tiny_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture
def app(monkeypatch, ckpt_dir):
    """A fresh AppTest session on the tiny checkpoints (caches cleared: other tests may have cached
    traces of different models under the same names)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _visit_all(at, text: str) -> dict:
    """Set the sidebar text, then run every page; returns page → problems (empty when fine)."""
    at.text_area(key="text").set_value(text)
    problems, seen = {}, {}
    for page in PAGES:
        at.switch_page(page).run()
        found = [f"exception: {e.value[:300]}" for e in at.exception]
        found += [f"error: {e.value[:300]}" for e in at.error]
        bodies = [h.value for h in at.html] + [m.value for m in at.markdown if m.proto.allow_html]
        found += [f"unescaped HTML: {m.group(0)!r}" for b in bodies for m in [_ACTIVE_HTML.search(b)] if m]
        if found:
            problems[page] = found
        seen[page] = at
    return problems


@pytest.mark.parametrize("name", list(TEXTS))
def test_every_page_survives_hostile_text(app, name):
    problems = _visit_all(app, TEXTS[name])
    assert not problems, problems
    # The user's input itself is kept whole in the text box, whatever the page traced.
    assert app.text_area(key="text").value == TEXTS[name]


def test_empty_text_shows_a_message_not_a_chart(app):
    app.text_area(key="text").set_value("")
    shown = []
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception
        shown.append(" ".join(i.value for i in app.info))
    # The trace views say why there is nothing to plot.
    ctx = app.session_state["rnnviz_ctx"]
    assert ctx.trace is None and "empty" in ctx.error
    assert sum("empty" in s for s in shown) >= 2, shown


def test_long_paste_is_capped_with_a_visible_notice(app):
    from app_pages.ui.text import MAX_PAGE_CHARS

    text = TEXTS["paste-100k"]
    app.text_area(key="text").set_value(text)
    noticed = {}
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.value for e in app.exception])
        ctx = app.session_state["rnnviz_ctx"]
        # What is traced is exactly the first MAX_PAGE_CHARS characters, and the page says so.
        assert ctx.text == text[:MAX_PAGE_CHARS] and ctx.truncated_from == len(text)
        assert ctx.trace is not None and "".join(ctx.trace.chars) == text[:MAX_PAGE_CHARS]
        noticed[page] = any("100,000 characters" in w.value and f"{MAX_PAGE_CHARS:,}" in w.value
                            for w in app.warning)
    # Every page that shows the trace (i.e. calls app_pages.ui.text.notices) shows the notice.
    uses_notices = [p for p in PAGES if "notices(ctx)" in (REPO / p).read_text(encoding="utf-8")]
    assert len(uses_notices) >= 2
    missing = [p for p in uses_notices if not noticed[p]]
    assert not missing, f"no truncation notice on {missing}"
    assert app.text_area(key="text").value == text  # the paste itself is not cut


def test_out_of_vocabulary_characters_are_marked_on_predictions(app):
    text = TEXTS["out-of-vocabulary"]
    app.text_area(key="text").set_value(text)
    page = next(p for p in PAGES if p.endswith("predictions.py"))
    app.switch_page(page).run()
    assert not app.exception
    n = len(app.session_state["rnnviz_ctx"].trace.unknown_positions)
    assert n == sum(ch not in app.session_state["rnnviz_ctx"].model.vocab for ch in text) > 0
    marks = [m.value for m in app.metric if "nknown" in m.label] + [w.value for w in app.warning]
    assert any(str(n) in m for m in marks), marks


# --------------------------------------------------------------------------- numbers that overflow
@pytest.mark.parametrize("ckpt,act", [("overflow-relu", None), ("timemachine-rnn", "relu"),
                                      ("timemachine-rnn", None), ("timemachine-gru", None),
                                      ("timemachine-lstm", None)])
def test_whh_times_5_over_5000_steps_shows_inf_nan_and_the_page_keeps_working(app, ckpt_dir, ckpt, act):
    """Issue 7's numbers case: W_hh × 5 over 5,000 steps. Where the numbers overflow (certainly for
    ``overflow-relu``: a ReLU RNN with W_hh = I and a positive bias, so ×5 grows like 5^t) the
    Gradients view says so in its charts' titles and its reading — never a stack trace, never a
    silently shortened curve — and every other view still renders. Bounded cells (tanh, GRU, LSTM)
    need not overflow; for them every value a chart plots must be finite unless its title says not."""
    tokens = tuple(rnnviz.Vocab.from_text("hello world, the time machine by h. g. wells\n").tokens)
    boom = rnnviz.build_model(rnnviz.ModelConfig("rnn_relu", 8, 1, tokens), seed=0)
    with torch.no_grad():
        boom.layers[0].weight_hh_l0.copy_(torch.eye(8))
        boom.layers[0].bias_hh_l0.fill_(0.1)
    rnnviz.save_checkpoint(boom, ckpt_dir / "overflow-relu.safetensors", {"corpus": "tiny test"})
    text = ("hello world, the time machine by h. g. wells\n" * 120)[:5000]
    at = app.run()   # lists the checkpoint written above
    at.selectbox(key="ckpt").set_value(ckpt)
    at.text_area(key="text").set_value(text)
    at.query_params.update({"gr.scale": "5.0", "gr.len": "5000"})
    if act:
        at.query_params["gr.act"] = act
    at.switch_page("app_pages/gradients.py").run()
    assert not at.exception and not at.error, [e.value[:300] for e in list(at.exception) + list(at.error)]
    assert at.number_input(key="g_len").value == 5000 and at.slider(key="g_scale").value == 5.0
    assert at.selectbox(key="ckpt").value == ckpt
    charts = chart_specs(at)
    titles = " ".join(c["layout"]["title"]["text"] for c in charts)
    prose = "\n".join(m.value for m in at.markdown)
    if ckpt == "overflow-relu":
        assert ("inf" in titles or "NaN" in titles) and "overflowed" in prose, (titles, prose[:500])
    # whatever overflowed is announced: a title that mentions no inf/NaN plots only finite numbers
    for c in charts:
        if "inf" not in c["layout"]["title"]["text"] and "NaN" not in c["layout"]["title"]["text"]:
            for tr in c["data"]:
                for axis in ("y", "z"):
                    vals = tr.get(axis)
                    if isinstance(vals, list):
                        flat = [v for row in vals for v in (row if isinstance(row, list) else [row])]
                        assert all(v is None or isinstance(v, str) or math.isfinite(v) for v in flat)
    for page in PAGES:   # the session is not broken by it
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value[:300] for e in at.exception])


def test_a_diverging_model_reports_infinite_perplexity_instead_of_raising():
    """Found by the test above: states that overflow give a cross-entropy of ~1e4 nats and
    math.exp raised OverflowError in Trace.perplexity (a stack trace on the Predictions page)."""
    tokens = ("<unk>", *"ab ")
    model = rnnviz.build_model(rnnviz.ModelConfig("rnn_relu", 4, 1, tokens), seed=0)
    with torch.no_grad():
        model.layers[0].weight_hh_l0.copy_(torch.eye(4) * 5)
        model.layers[0].bias_hh_l0.fill_(0.1)
    tr = rnnviz.trace(model, "ab " * 12)          # 36 steps: states ~5^35, still finite in float32
    assert torch.isfinite(tr["layer0.h"]).all()
    assert math.isfinite(tr.cross_entropy) and tr.cross_entropy > 710
    assert tr.perplexity == math.inf
    assert math.isnan(rnnviz.trace(model, "a").perplexity)
