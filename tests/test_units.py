"""Unit finder, hypothesis → match and PCA (counterfactuals and ablation: test_unit_interventions.py), checked against definitions
on hand-built networks (build_model + set_textbook_params) and small random ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnviz
from rnnviz import features as F
from rnnviz import units as U
from tests.conftest import REPO, tiny_model
from tests.unit_nets import ALPHABET, hand_built, sample_text
from tools.units_report import report

@pytest.fixture(scope="module")
def hand_index():
    model = hand_built()
    return model, U.build_index(model, sample_text())


# ---------------------------------------------------------------- definitions of the hand-built net
def test_hand_built_units_are_what_they_claim(hand_index):
    model, index = hand_index
    assert torch.allclose(index.activations(U.UnitRef(0, "h", 0)), F.feature("bracket_depth", index.text),
                          atol=1e-5)
    assert torch.allclose(index.activations(U.UnitRef(0, "h", 1)), F.feature("vowel", index.text),
                          atol=1e-6)


def test_bracket_depth_unit_ranks_first(hand_index):
    _, index = hand_index
    for by in ("r", "auc"):
        res = U.rank_units(index, "bracket_depth", by=by, top=4)
        assert res.top[0].unit == U.UnitRef(0, "h", 0), by
    res = U.rank_units(index, "bracket_depth", by="r")
    assert res.top[0].r == pytest.approx(1.0, abs=1e-5)
    assert res.top[0].auc == pytest.approx(1.0)
    assert res.label_rule.startswith("bracket_depth >")


def test_vowel_copy_unit_has_auc_one(hand_index):
    _, index = hand_index
    res = U.rank_units(index, "vowel", by="auc", top=1)
    assert res.top[0].unit == U.UnitRef(0, "h", 1)
    assert res.top[0].auc == 1.0
    assert res.label_rule == "vowel = 1"


def pairwise_auc(a: np.ndarray, y: np.ndarray) -> float:
    pos, neg = a[y], a[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (len(pos) * len(neg))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_auc_and_r_equal_independent_computations(cell):
    model = tiny_model(cell, layers=2, hidden=6, text=ALPHABET, seed=3)
    text = sample_text(600, seed=1)
    index = U.build_index(model, text)
    tr = rnnviz.trace(model, text)
    acts = U.activation_matrix(tr).double().numpy()
    assert acts.shape == (len(text), len(U.unit_refs(model)))
    for name in ("vowel", "bracket_depth", "position_in_word"):
        f = F.feature(name, index.text)
        res = U.rank_units(index, name)
        label, _ = U.label_for(name, f)
        y = label.numpy()
        for j in range(acts.shape[1]):
            assert res.auc[j] == pytest.approx(pairwise_auc(acts[:, j], y), abs=1e-9)
            with np.errstate(invalid="ignore", divide="ignore"):   # a constant unit: NaN → r = 0
                ref = np.corrcoef(acts[:, j], f.double().numpy())[0, 1]
            assert res.r[j] == pytest.approx(0.0 if np.isnan(ref) else ref, abs=2e-5)


def test_auc_ties_use_half_credit():
    model = hand_built()
    index = U.build_index(model, "aa(b)aaxx(y)")
    values = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.float32)
    res = U.rank_units(index, "vowel", values=values)
    acts = U.activation_matrix(rnnviz.trace(model, index.text)).double().numpy()
    for j in range(acts.shape[1]):
        assert res.auc[j] == pytest.approx(pairwise_auc(acts[:, j], values.numpy() > 0.5), abs=1e-12)


def test_constant_feature_and_regex_errors(hand_index):
    _, index = hand_index
    with pytest.raises(U.UnitsError, match="constant|all"):
        U.rank_units(index, "uppercase")
    with pytest.raises(F.FeatureError):
        U.rank_units(index, "regex:(")
    res = U.rank_units(index, "regex:[aeiou]", by="auc", top=1)
    assert res.top[0].unit == U.UnitRef(0, "h", 1) and res.top[0].auc == 1.0


def test_query_is_fast(hand_index):
    _, index = hand_index
    index.feature("bracket_depth")
    res = U.rank_units(index, "bracket_depth")
    assert res.seconds < 1.0


def test_index_cache_is_bounded_and_builds_each_index_once(monkeypatch):
    U.INDEXES.clear()
    model = hand_built()
    built = []
    real = U.build_index
    # get_index calls build_index from its own module, rnnviz.units.index
    monkeypatch.setattr(U.index, "build_index", lambda *a, **k: built.append(1) or real(*a, **k))
    first = U.get_index(model, sample_text(100, seed=0))
    assert U.get_index(model, sample_text(100, seed=0)) is first and len(built) == 1
    for i in range(1, U.INDEX_CACHE_ENTRIES + 2):
        U.get_index(model, sample_text(100, seed=i))
    assert len(U.INDEXES) == U.INDEX_CACHE_ENTRIES and U.INDEXES.bytes <= U.INDEX_CACHE_BYTES
    # the same text under another sample label is another index (its `source` differs)
    assert U.get_index(model, sample_text(100, seed=0), source="typed").source == "typed"
    U.INDEXES.clear()


def _tiny_corpus_checkpoint(tmp_path, monkeypatch, name: str) -> None:
    """A tiny LSTM saved as ``name`` whose provenance names a tiny corpus in tmp_path (half held out)."""
    corpus = "the time traveller (as we shall call him for now) was here.\n" * 40
    (tmp_path / "tiny.txt").write_text(corpus, encoding="utf-8")
    model = tiny_model("lstm", hidden=8, text=corpus)
    rnnviz.save_checkpoint(model, tmp_path / "ck" / f"{name}.safetensors",
                           {"corpus": "tiny", "val_fraction": 0.5})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path / "ck"))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(tmp_path))


def test_prebuilt_indexes_are_the_ones_the_units_view_uses(tmp_path, monkeypatch):
    """The server's warm-up (prebuild_indexes, models loaded afresh) fills exactly the entries the
    Units view asks for with the shared model: opening the view builds nothing."""
    from streamlit.testing.v1 import AppTest

    _tiny_corpus_checkpoint(tmp_path, monkeypatch, "timemachine-lstm")
    U.INDEXES.clear()
    assert U.prebuild_indexes(max_chars=U.SAMPLE_CHARS, checkpoint_dir=tmp_path / "ck",
                              corpora_dir=tmp_path) == ["timemachine-lstm"]
    assert len(U.INDEXES) == 1
    misses = U.INDEXES.misses
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.query_params["ckpt"] = "timemachine-lstm"
    at.switch_page("app_pages/units.py").run()
    assert not at.exception, [e.value[:300] for e in at.exception]
    assert U.INDEXES.misses == misses and len(U.INDEXES) == 1   # served from the warm-up
    U.INDEXES.clear()


def test_corpus_sample_is_the_tail_from_a_line_start(tmp_path, monkeypatch):
    (tmp_path / "tiny.txt").write_text("line one\nline two\nline three\n", encoding="utf-8")
    text, desc = U.corpus_sample("tiny.txt", max_chars=15, corpora_dir=tmp_path)
    assert text == "line three\n" and "last" in desc


# ---------------------------------------------------------------- hypothesis → match
def test_auto_threshold_rule():
    lo = torch.tensor([0.0, 0.5, 2.0, -3.0], dtype=torch.float64)
    hi = torch.tensor([1.0, 1.5, 3.0, -1.0], dtype=torch.float64)
    # (0.5, 1] is inside two intervals: the most; its middle is 0.75
    from rnnviz.units.hypothesis import _auto_threshold
    assert _auto_threshold(lo, hi) == pytest.approx(0.75)
    assert _auto_threshold(torch.tensor([1.0]), torch.tensor([0.5])) is None


def test_hypothesis_finds_the_depth_unit_and_matches():
    model = hand_built(hidden=2)                          # just the depth and the vowel unit
    index = U.build_index(model, sample_text())
    text = "xx(abc)xx zz"
    tr = rnnviz.trace(model, text)
    hyp = U.select_units(index, tr, 2, 6)                 # "(abc": depth 1 inside, 0 around
    depth_unit = U.UnitRef(0, "h", 0)
    assert [(s.unit, s.sign) for s in hyp.units] == [(depth_unit, 1)]
    scale = float(index.scale[0])
    assert scale == float(F.feature("bracket_depth", index.text).max())
    assert 0 < hyp.threshold <= 1 / scale                 # on at depth 1, off at depth 0
    assert hyp.threshold == pytest.approx(0.5 / scale)    # the middle of (0, 1/scale]
    # matches are exactly the maximal runs of the sample where the depth reaches 1
    matches, total = U.find_matches(index, hyp, top=10_000, context=5)
    depth = F.feature("bracket_depth", index.text)
    on = (depth >= 1).tolist()
    runs, t = [], 0
    while t < len(on):
        if on[t]:
            s = t
            while t < len(on) and on[t]:
                t += 1
            runs.append((s, t))
        t += 1
    assert total == len(runs) > 0
    assert sorted((m.start, m.end) for m in matches) == runs
    assert all(m.text == index.text[m.start:m.end] for m in matches)
    assert all(m.left == index.text[max(0, m.start - 5):m.start] for m in matches)


def test_selected_units_obey_the_definition(hand_index):
    model, index = hand_index
    tr = rnnviz.trace(model, "xx(abc)xx zz e(o)")
    for a, b in ((2, 6), (3, 4), (10, 12)):
        for theta in (None, 0.0, 0.05, 0.3):
            hyp = U.select_units(index, tr, a, b, threshold=theta)
            if hyp.threshold is None:
                continue
            x = index.scaled(U.activation_matrix(tr))
            lo, hi = hyp.around
            for s in hyp.units:
                col = s.sign * x[:, index.column(s.unit)]
                assert float(col[a:b].min()) >= hyp.threshold
                assert float(torch.cat([col[lo:a], col[b:hi]]).max()) < hyp.threshold
    depth = U.select_units(index, tr, 2, 6, threshold=0.5 / float(index.scale[0]))
    assert (U.UnitRef(0, "h", 0), 1) in [(s.unit, s.sign) for s in depth.units]


def test_adjustable_threshold_and_bad_spans(hand_index):
    model, index = hand_index
    tr = rnnviz.trace(model, "xx(abc)xx")
    high = U.select_units(index, tr, 2, 6, threshold=1e6)
    assert high.units == [] and high.threshold == 1e6
    for a, b in ((3, 3), (5, 2), (-1, 2), (0, 99)):
        with pytest.raises(U.UnitsError):
            U.select_units(index, tr, a, b)
    with pytest.raises(U.UnitsError, match="whole text"):
        U.select_units(index, tr, 0, len(tr))


# ---------------------------------------------------------------- projection
def test_pca_matches_svd_of_centred_data():
    model = tiny_model("lstm", layers=2, hidden=8)
    tr = rnnviz.trace(model, "the time machine by h. g. wells, a story")
    proj = U.project_trace(tr, ["layer0.h", "layer1.c"], k=2)
    x = torch.cat([tr["layer0.h"], tr["layer1.c"]], dim=1).double()
    xc = x - x.mean(0)
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    assert torch.allclose(proj.coords.abs(), (u[:, :2] * s[:2]).abs(), atol=1e-9)
    assert torch.allclose(proj.explained, s[:2] ** 2 / (s ** 2).sum())
    assert torch.allclose(proj.coords, xc @ proj.components, atol=1e-12)
    assert float(proj.explained.sum()) <= 1.0 + 1e-12
    with pytest.raises(U.UnitsError):
        U.pca(torch.zeros(1, 3))
    with pytest.raises(U.UnitsError):
        U.project_trace(tr, ["layer7.h"])


def test_report_without_checkpoints(tmp_path):
    md = report(checkpoint_dir=tmp_path)
    assert "No shipped checkpoint" in md


# ---------------------------------------------------------------- HTML and figures escape user text
def test_html_builders_escape_user_text():
    from rnnviz.plots import units as P

    evil = '<script>alert("x")</script>&'
    html = P.unit_text_html(list(evil), [0.1] * len(evil), "layer0.h[0]")
    assert "<script>" not in html and "&lt;" in html
    html = P.span_text_html(list(evil), 1, 4, (0, 6))
    assert "<script>" not in html
    m = U.Match(0, 3, 1.0, evil, evil, evil)
    assert "<script>" not in P.matches_html([m]) and "&lt;script&gt;" in P.matches_html([m])


def test_figures_build():
    from rnnviz.plots import units as P

    model = tiny_model("lstm", layers=2)
    text = "a <b> & the time machine"
    cf = U.counterfactual(model, text, 2, 3, "<")
    fig = P.counterfactual_figure(cf)
    assert fig.layout.yaxis.type == "log" and len(fig.data) == 5
    assert "<b>" not in fig.layout.title.text
    ab = U.ablate(model, text, 1, 2, kind="c", mode="clamp", value=1.0)
    assert len(P.ablation_figure(ab).data) == 2 and P.ablation_rows(ab, [0, 1])[0]["step"] == 0
    tr = rnnviz.trace(model, text)
    fig = P.pca_figure(U.project_trace(tr, ["layer1.h"]), tr.chars)
    assert "&lt;" in list(fig.data[1].text)
    index = U.build_index(model, text * 5)
    res = U.rank_units(index, "whitespace", top=5)
    assert len(P.ranked_units_figure(res).data[0].y) == 5 and len(P.ranked_units_rows(res)) == 5


def test_report_on_a_tiny_checkpoint(tmp_path, monkeypatch):
    _tiny_corpus_checkpoint(tmp_path, monkeypatch, "tiny-lstm")
    U.INDEXES.clear()
    md = report(max_chars=1500, corpora_dir=tmp_path, checkpoint_dir=tmp_path / "ck")
    U.INDEXES.clear()
    assert "## tiny-lstm" in md and "held-out validation part" in md
    assert "| bracket_depth |" in md and "Memory of a one-letter substitution" in md
    assert "remembers a one-letter substitution" in md   # the highlights' memory line
