"""Figure specs of the Predictions, Step-through and Generate views, the coloured text, and the
pure data prep behind them (step_terms against the trace, top-k, the CSV frame)."""

from __future__ import annotations

import json
import math

import numpy as np
import plotly.io as pio
import pytest
import torch

import rnnviz
from rnnviz import views
from rnnviz.plots import predictions as pplots
from rnnviz.plots import stepthrough as stplots
from rnnviz.plots import text as tplots
from rnnviz.plots.generate import generation_figure

from .conftest import SMALL_TEXT, tiny_model
from .test_plots_states import decode

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def spec(fig) -> dict:
    return json.loads(pio.to_json(fig))


@pytest.fixture(scope="module")
def gru():
    model = tiny_model("gru", 1, 8)
    return model, rnnviz.trace(model, "hello hello\n")


def test_topk_table_matches_torch_topk(gru):
    _, tr = gru
    chars, probs, ids = views.topk(tr.probs, list(tr.tokens), 3)
    ref = tr.probs.topk(3, dim=1)
    assert torch.equal(ids, ref.indices.T) and torch.allclose(probs, ref.values.T)
    assert chars[0][0] == tr.tokens[int(ref.indices[0, 0])]
    nxt = [tr.chars[t + 1] if t + 1 < len(tr) else None for t in range(len(tr))]
    s = spec(pplots.topk_figure(tr.chars, chars, probs, next_chars=nxt))
    heat, boxes = s["data"]
    assert len(heat["x"]) == len(tr) and heat["y"] == ["#1", "#2", "#3"]
    assert np.allclose(decode(heat["z"]), probs.numpy(), atol=1e-7)
    # every outlined guess is the character that really came next
    for x, y in zip(boxes["x"], boxes["y"]):
        t, r = int(x.split(":")[0]), int(y[1:]) - 1
        assert chars[r][t] == tr.chars[t + 1]
    # #28: each cell shows its guess and the guess's probability, not only on hover
    from rnnviz.plots.common import display_char
    for r in range(3):
        for t in (0, len(tr) - 1):
            assert heat["text"][r][t] == f"{display_char(chars[r][t])}<br>{float(probs[r, t]):.2f}"


def test_probability_heatmap_is_vocab_by_steps(gru):
    _, tr = gru
    next_ids = [int(tr.ids[t + 1]) if t + 1 < len(tr) else None for t in range(len(tr))]
    s = spec(pplots.probability_heatmap(tr.probs, list(tr.tokens), tr.chars, next_ids=next_ids))
    z = decode(s["data"][0]["z"])
    assert z.shape == (len(tr.tokens), len(tr))
    assert np.allclose(z, tr.probs.numpy().T, atol=1e-7)
    assert np.allclose(z.sum(0), 1, atol=1e-5)
    assert len(s["data"][1]["x"]) == len(tr) - 1           # a dot per step that has a next char
    logz = decode(spec(pplots.probability_heatmap(tr.probs, list(tr.tokens), tr.chars, log=True))["data"][0]["z"])
    assert np.allclose(logz, np.log10(tr.probs.numpy().T), atol=1e-4)


def test_step_distribution_highlights_next_char(gru):
    _, tr = gru
    nid = int(tr.ids[1])
    s = spec(pplots.step_distribution(tr.probs[0], list(tr.tokens), next_id=nid, top=3))
    bar = s["data"][0]
    labels = pplots.token_labels(list(tr.tokens))
    assert labels[nid] in bar["x"]
    red = [c for c in bar["marker"]["color"] if c == "#d62728"]
    assert len(red) == 1
    assert list(decode(bar["y"]))[:3] == sorted(decode(bar["y"])[:3], reverse=True)


def test_token_labels_unique_and_visible():
    labels = pplots.token_labels(["<unk>", " ", "␣", "\n", "a"])
    assert len(set(labels)) == 5
    assert labels[0] == "⟨unk⟩" and labels[3] == "⏎"


def test_summary_and_unknowns():
    model = tiny_model("lstm", 1, 8)
    tr = rnnviz.trace(model, "hello QQ world")          # Q is not in the vocabulary
    s = views.prediction_summary(tr)
    assert s["cross_entropy"] == pytest.approx(float(tr.surprisal.double().mean()))
    assert s["perplexity"] == pytest.approx(math.exp(s["cross_entropy"]))
    assert s["bits_per_char"] == pytest.approx(s["cross_entropy"] / math.log(2))
    assert views.unknown_chars(tr) == [(6, "Q"), (7, "Q")]
    sur = views.char_surprisal(tr)
    assert sur[0] is None and sur[1] == pytest.approx(float(tr.surprisal[0]))
    p = views.next_char_probs(tr)
    assert p[-1] is None and p[0] == pytest.approx(float(tr.probs[0, tr.ids[1]]), rel=1e-5)


# --------------------------------------------------------------------------- coloured text
def test_colored_text_escapes_everything():
    chars = list(HOSTILE)
    html = tplots.colored_text_html(chars, [0.1] * len(chars), vmin=-1, vmax=1,
                                    tooltips=[HOSTILE] * len(chars), caption=HOSTILE)
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;" in html and "&quot;" in html
    # the only tags are ours
    import re
    tags = set(re.findall(r"<\s*([a-zA-Z]+)", html))
    assert tags <= {"div", "span", "br"}


def test_colored_text_whitespace_and_colours():
    html = tplots.colored_text_html(list("a b\nc"), [-1.0, 0.0, 1.0, None, 0.5], vmin=-1, vmax=1,
                                    marked=[4])
    assert "⏎</span><br>" in html
    assert html.count("<span") == 5
    assert "underline wavy red" in html
    lo, hi = tplots.color_of(-1, -1, 1, tplots.DIVERGING), tplots.color_of(1, -1, 1, tplots.DIVERGING)
    assert lo[2] > lo[0] and hi[0] > hi[2]          # blue for negative, red for positive
    assert tplots.color_of(None, 0, 1, "Viridis") is None
    assert tplots.color_of(float("nan"), 0, 1, "Viridis") is None
    with pytest.raises(ValueError):
        tplots.colored_text_html(list("ab"), [0.0], vmin=0, vmax=1)


# --------------------------------------------------------------------------- step-through
@pytest.mark.parametrize("cell", rnnviz.CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_step_terms_reproduce_the_trace(cell, layers):
    model = tiny_model(cell, layers, 8)
    tr = rnnviz.trace(model, SMALL_TEXT)
    for layer in range(layers):
        for t in (0, 1, len(tr) - 1):
            terms = views.step_terms(model, tr, layer, t)
            assert torch.allclose(terms["H_t"], tr[f"layer{layer}.h"][t], atol=1e-5), (cell, layer, t)
            if cell == "lstm":
                assert torch.allclose(terms["C_t"], tr[f"layer{layer}.c"][t], atol=1e-5)
                assert torch.allclose(terms["F_t"], tr[f"layer{layer}.gates.f"][t], atol=1e-5)
            assert tuple(terms) == model.spec.step_view
            if cell in ("gru", "gru_d2l"):
                assert torch.allclose(terms["Z_t"], tr[f"layer{layer}.gates.z"][t], atol=1e-5)
                assert torch.allclose(terms["H̃_t"], tr[f"layer{layer}.candidate"][t], atol=1e-5)
            if cell.startswith("rnn"):
                s = terms["X_t W_xh"] + terms["H_{t-1} W_hh"] + terms["b_h"]
                assert torch.allclose(s, terms["pre-activation"])
    out = views.step_output(model, tr, 3)
    assert torch.allclose(out["softmax"], tr.probs[3], atol=1e-5)
    assert torch.allclose(out["O_t"], tr.logits[3], atol=1e-5)
    with pytest.raises(IndexError):
        views.step_terms(model, tr, 0, len(tr))


def test_terms_figure_writes_the_numbers():
    model = tiny_model("lstm", 1, 20)
    tr = rnnviz.trace(model, SMALL_TEXT)
    terms = views.step_terms(model, tr, 0, 5)
    units = views.top_units(terms["H_t"], 16)
    assert len(units) == 16
    assert abs(float(terms["H_t"][units[0]])) == pytest.approx(float(terms["H_t"].abs().max()))
    s = spec(stplots.terms_figure(terms, units))["data"][0]
    assert s["x"] == list(terms)
    z = decode(s["z"])
    assert z.shape == (16, len(terms))
    assert np.allclose(z[:, -1], terms["H_t"].numpy()[units], atol=1e-6)
    assert s["text"][0][-1] == f"{z[0, -1]:.3f}"
    assert s["zmid"] == 0
    onehot = spec(stplots.onehot_figure(model.one_hot(tr.ids[5:6])[0], list(tr.tokens)))["data"][0]
    assert decode(onehot["z"]).sum() == 1
    assert views.top_units(torch.tensor([0.1, -0.5]), 16) == [0, 1]
    assert views.top_predictions(torch.tensor([0.1, 0.6, 0.3]), 2) == [1, 2]


def test_generation_figure():
    s = spec(generation_figure("ab a", [0.5, 0.25, 0.1, 0.9], [0.6, 0.3, 0.2, 0.95]))
    assert s["data"][0]["x"] == ["0:a", "1:b", "2:␣", "3:a"]
    assert list(decode(s["data"][0]["y"])) == [0.5, 0.25, 0.1, 0.9]


# --------------------------------------------------------------------------- CSV
def test_trace_frame_columns_and_values():
    model = tiny_model("lstm", 2, 4)
    tr = rnnviz.trace(model, "aab a")
    df = views.trace_frame(tr)
    assert len(df) == 5
    assert list(df["char"]) == list("aab a")
    assert f"layer1.h[3]" in df.columns and "layer0.gates.f[0]" in df.columns
    assert df["layer0.h[2]"].to_numpy() == pytest.approx(tr["layer0.h"][:, 2].numpy())
    assert df["surprisal_nats"].iloc[0] == pytest.approx(float(tr.surprisal[0]))
    assert math.isnan(df["surprisal_nats"].iloc[-1])
    wide = views.trace_frame(tr, include_probs=True)
    assert "P(a)" in wide.columns
    assert wide["P(a)"].to_numpy() == pytest.approx(tr.probs[:, tr.tokens.index("a")].numpy())
    csv = df.to_csv(index=False)
    assert csv.splitlines()[0].startswith("step,char,id,unknown")


def test_colored_text_data_colours_every_character_as_color_of():
    chars = list("a b\nc<")
    values = [-1.0, 0.0, 1.0, None, 0.5, float("nan")]
    d = tplots.colored_text_data(chars, values, vmin=-1, vmax=1, tooltips=[str(i) for i in range(6)],
                                 marked=[5, 9, -1], font_size=17, caption="cap")
    assert d["chars"] == ["a", " ", "b", "⏎\n", "c", "<"]          # text stays text: no escaping here
    rgb = [tplots.color_of(v, -1, 1, tplots.DIVERGING) for v in values]
    assert d["bg"] == ["" if c is None else "#%02x%02x%02x" % c for c in rgb]
    assert d["bg"][3] == d["bg"][5] == "" and d["bg"][1] == "#f7f7f7"   # missing → uncoloured; 0 → white
    # white text exactly where the background is dark (luma ≤ 140)
    assert d["light"] == [i for i, c in enumerate(rgb) if c and 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] <= 140]
    assert d["light"] and d["marked"] == [5]                          # out-of-range marks dropped
    assert d["tips"] == ["0", "1", "2", "3", "4", "5"] and d["font_size"] == 17 and d["caption"] == "cap"
    with pytest.raises(ValueError):
        tplots.colored_text_data(list("ab"), [0.0, 1.0], vmin=0, vmax=1, tooltips=["x"])
