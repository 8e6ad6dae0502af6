"""A checkpoint file replaced under the same name (new weights) is never served stale, on any view:
every cache of every view keys on the model's content hash (``rnnviz.ref.ModelRef``, ``ctx.ref``).

Each view (and each Units tab) is opened with model A; the file is replaced by model B; the same
sessions rerun; what they show must equal what a fresh server shows for B, and differ from A."""

from __future__ import annotations

import os

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz import units as U
from rnnviz.ref import model_ref

from app_pages.ui.params import VIEWS

from .conftest import REPO, chart_specs, tiny_model

CORPUS = ("the time traveller (as we shall call him for now) was explaining "
          "a curious idea to us. his dark eyes were bright and eager.\n") * 40
TEXT = "the time traveller was explaining a curious idea"
#: Extra URL parameters per view (app_pages/ui/params.py); a view not listed opens with none.
#: Knobs whose default depends on the model (the unit of largest variance) are pinned in the URL, so
#: a rerun session and a fresh one show the same selection; Units is opened on each tab.
EXTRA = {"app_pages/hidden_states.py": [{"hs.unit": "3"}], "app_pages/step_through.py": [{"st.t": "5"}],
         "app_pages/compare.py": [{"cmp.models": "swap,other"}],
         "app_pages/units.py": [{"units.tab": tab} for tab in
                                ("Unit finder", "Hypothesis", "Counterfactual", "Ablation", "Projection")]}
#: Views that show nothing of the sidebar's model: Train trains and shows a model of its own.
OWN_MODEL = {"app_pages/train.py"}
#: (page, extra URL parameters): every view, and every Units tab.
CASES = [(v.page, params) for v in VIEWS if v.page not in OWN_MODEL for params in EXTRA.get(v.page, [{}])]


@pytest.fixture
def env(tmp_path, monkeypatch):
    ckpts, corpora = tmp_path / "ckpts", tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "tinycorpus.txt").write_text(CORPUS, encoding="utf-8")
    rnnviz.save_checkpoint(tiny_model("gru", 1, 8, text=CORPUS, seed=5), ckpts / "other.safetensors",
                           {"corpus": "tinycorpus", "val_fraction": 0.1})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(corpora))
    _clear_caches()
    yield ckpts
    _clear_caches()


def _clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()          # the models and the trace store
    U.INDEXES.clear()


def _save(model, ckpts) -> None:
    path = ckpts / "swap.safetensors"
    old = path.stat().st_mtime_ns if path.exists() else 0
    rnnviz.save_checkpoint(model, path, {"corpus": "tinycorpus", "val_fraction": 0.1})
    stat = path.stat()                 # a later mtime even on a coarse-clock file system
    os.utime(path, ns=(stat.st_atime_ns, max(stat.st_mtime_ns, old + 10**9)))


def _open(page: str, params: dict) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    query = {"ckpt": "swap", "text": TEXT, **params}
    at.query_params.update(query)
    _run(at)                   # st.navigation registers the pages on a first run
    at.switch_page(page)
    at.query_params.update(query)
    _run(at)
    home = next(v for v in VIEWS if v.default)   # a page AppTest did not find shows the default view
    assert at.title[0].value != home.title or page == home.page, page
    return at


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> dict:
    """The numbers a view shows: its charts' data, metrics, tables and coloured-text HTML."""
    return {"charts": [spec["data"] for spec in chart_specs(at)],
            "metrics": [(m.label, m.value) for m in at.metric],
            "tables": [df.value.to_json() for df in at.dataframe],
            "html": [el.proto.body for el in at.get("html") if "<style>" not in el.proto.body]}


def test_replaced_checkpoint_is_never_served_stale_on_any_view(env):
    a = tiny_model("lstm", 2, 8, text=CORPUS, seed=1)
    b = tiny_model("lstm", 2, 8, text=CORPUS, seed=2)      # retrained under the same name
    assert model_ref(a).digest != model_ref(b).digest
    _save(a, env)
    sessions = [_open(page, params) for page, params in CASES]
    with_a = [shown(at) for at in sessions]
    _save(b, env)
    after = [shown(_run(at)) for at in sessions]           # the same sessions, the same server
    _clear_caches()
    fresh = [shown(_open(page, params)) for page, params in CASES]   # what a new server shows for B
    stale = [(page, params, [k for k in want if new[k] != want[k]])
             for (page, params), new, want in zip(CASES, after, fresh) if new != want]
    assert not stale, f"served stale after the checkpoint was replaced: {stale}"
    blind = [(page, params) for (page, params), old, want in zip(CASES, with_a, fresh) if old == want]
    assert not blind, f"these views show nothing that depends on the model: {blind}"
