"""The Units view under Streamlit's AppTest: every tab renders without an exception, bad input
gives a message (never a stack trace), and the shared model is never changed."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from rnnviz import save_checkpoint
from tests.conftest import REPO, chart_specs, rerun_until, tiny_model

CORPUS = ("the time traveller (as we shall call him for now) was explaining "
          "a curious idea to us. his dark eyes were bright and eager.\n") * 40


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    ckpts, corpora = tmp_path / "ckpts", tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "tinycorpus.txt").write_text(CORPUS, encoding="utf-8")
    model = tiny_model("lstm", layers=2, hidden=8, text=CORPUS)
    save_checkpoint(model, ckpts / "timemachine-lstm.safetensors",
                    {"corpus": "tinycorpus", "val_fraction": 0.1})
    save_checkpoint(tiny_model("gru", hidden=8, text=CORPUS), ckpts / "tiny-gru.safetensors",
                    {"corpus": "missing-corpus"})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(corpora))
    return ckpts


def run_tab(tab: str, params: dict | None = None, ckpt: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.switch_page("app_pages/units.py")
    at.query_params["units.tab"] = tab
    if ckpt:
        at.query_params["ckpt"] = ckpt
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for kind in ("markdown", "caption", "info", "warning", "subheader", "text")
             for m in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_unit_finder_renders(app_env):
    at = run_tab("Unit finder")
    assert at.title[0].value == "Units"
    assert len(at.tabs) == 5
    assert any(sb.label == "Feature" for sb in at.selectbox)
    assert at.dataframe, "ranked units table"
    assert "Ranked all" in texts(at)
    assert "held-out" in texts(at)
    # ranked on the corpus, not the sidebar text: the chart says so, so a text commit keeps it
    rank = [f for f in chart_specs(at) if f["layout"]["meta"].get("chart") == "u_rank"]
    assert rank and rank[0]["layout"]["meta"] == {"chart": "u_rank", "text_independent": True}


def test_unit_finder_bad_regex_is_a_message(app_env):
    at = run_tab("Unit finder", {"units.feat": "regular expression…", "units.re": "(unclosed"})
    assert any("Invalid regular expression" in w.value for w in at.warning)


def test_constant_feature_is_a_message(app_env):
    at = run_tab("Unit finder", {"units.feat": "digit"})
    assert any("constant" in w.value or "all off" in w.value for w in at.warning)


def test_hypothesis_tab(app_env):
    at = run_tab("Hypothesis", {"units.a": "4", "units.b": "8"})
    assert any(s.label.startswith("Span") for s in at.slider)
    body = texts(at)
    assert "unit direction" in body or "No unit is on" in body


def test_hypothesis_text_not_found_is_a_message(app_env):
    at = run_tab("Hypothesis", {"units.how": "find", "units.find": "zzzz-not-there"})
    assert any("does not occur" in i.value for i in at.info)


def test_counterfactual_tab(app_env):
    at = run_tab("Counterfactual", {"units.es": "4", "units.ee": "5", "units.rep": "q"})
    assert any(m.label.startswith("KL") for m in at.metric)
    assert "before:" in texts(at)


def test_counterfactual_identical_edit(app_env):
    at = run_tab("Counterfactual", {"units.es": "0", "units.ee": "3", "units.rep": "the"})
    assert "exactly 0" in texts(at)


def test_ablation_tab_leaves_the_model_alone(app_env):
    import rnnviz
    from app_pages.ui import cache

    at = run_tab("Ablation", {"units.kind": "c", "units.mode": "clamp", "units.val": "2.5",
                              "units.unit": "3"})
    assert any(m.label == "Mean Δ surprisal" for m in at.metric)
    assert at.dataframe
    model = cache.shipped_model("timemachine-lstm")
    fresh = rnnviz.load_model(app_env / "timemachine-lstm.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_projection_tab(app_env):
    at = run_tab("Projection", {"units.pca": "layer0.h,layer1.c"})
    assert "explain" in texts(at)


def test_missing_corpus_is_a_message(app_env):
    at = run_tab("Unit finder", ckpt="tiny-gru")
    assert any("not available" in i.value for i in at.info)


def test_shrinking_text_and_switching_model_keep_widgets_valid(app_env):
    at = run_tab("Hypothesis")
    at.sidebar.text_area[0].set_value("the time traveller as we shall call him for now").run()
    [s for s in at.slider if s.label.startswith("Span")][0].set_value((40, 50)).run()
    at.sidebar.text_area[0].set_value("short").run()
    assert not at.exception, [e.value for e in at.exception]
    at.session_state["u_tab"] = "Ablation"
    at.run()
    [n for n in at.number_input if n.label == "Unit"][0].set_value(7).run()
    at.sidebar.selectbox[0].set_value("tiny-gru").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.label == "Mean Δ surprisal" for m in at.metric)


def test_unit_finder_leads_with_the_verdict(app_env):
    at = run_tab("Unit finder", {"units.feat": "whitespace"})
    # the verdict is computed in the heavy lane and drawn when ready (app_pages/ui/later.py)
    shown = texts(rerun_until(at, lambda a: "at chance level" in texts(a)))
    assert "Verdict: which units pass the controls" in shown
    assert "correlational" in shown and "at chance level" in shown
    heads = [h.value for h in at.subheader]
    assert heads.index("Verdict: which units pass the controls") < heads.index("Unit finder: ranked by correlation")
    assert len(at.dataframe) >= 2, "verdict table and ranked units"


def test_verdict_uses_the_shipped_controls(app_env):
    from rnnviz.checkpoint import load_model
    from rnnviz.units import scorecard
    from rnnviz.units.scorecard_cache import scorecard_sample, write_controls

    model = load_model(app_env / "timemachine-lstm.safetensors")
    sample, source = scorecard_sample(model, corpora_dir=app_env.parent / "corpora")
    df = scorecard(model, sample, ["whitespace"], max_causal=0)
    write_controls(df.attrs["controls"], app_env / "timemachine-lstm.safetensors", source)
    # a new sidecar is part of the scorecard's key: the cold result of another test is not reused
    at = run_tab("Unit finder", {"units.feat": "whitespace"})
    rerun_until(at, lambda a: "controls from the checkpoint’s sidecar" in texts(a))


def test_verdict_table_says_which_units_were_not_ablated(app_env):
    """Only the units that beat the controls, at most PAGE_MAX_CAUSAL, are ablated: the others show a
    dash (not "None") in the ablation columns, and a caption says why."""
    from rnnviz.units.scorecard_cache import PAGE_MAX_CAUSAL

    at = rerun_until(run_tab("Unit finder", {"units.feat": "whitespace"}), lambda a: "at chance level" in texts(a))
    table = next(d.value for d in at.dataframe if "Δloss on" in d.value.columns)
    cells = table[["Δloss on", "Δloss elsewhere", "z"]].astype(str)
    assert not cells.isin(["None", "nan", "NaN", "<NA>"]).any().any(), table
    tested = cells["Δloss on"] != "—"
    assert (tested == (cells["z"] != "—")).all() and tested.sum() <= PAGE_MAX_CAUSAL
    assert (~tested).any(), "a table of 12 rows has units that were not ablated"
    assert not tested[table.verdict == "chance"].any()          # at chance level: never ablated
    assert tested[table.verdict == "causal"].all()              # causal needs an ablation
    assert any("not ablated" in c.value and f"at most the {PAGE_MAX_CAUSAL} strongest" in c.value for c in at.caption)
