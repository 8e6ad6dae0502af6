"""Heavy parts of a view do not hold its script run (issue 27): with the server's heavy lane busy,
Units' verdict panel and Gradients' Jacobian chain show a placeholder (what is computed, its place
in the queue) while the rest of the page is drawn, and the result appears once it is computed
(app_pages/ui/later.py; the AppTest reruns as the page's polling fragment makes a browser do).

The heavy lane is held by a job of the test's own (app_pages.ui.work.LANES, one heavy worker), so
the first run provably returns before the result exists; nothing waits a fixed time."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from streamlit.testing.v1 import AppTest

from rnnviz import save_checkpoint
from tests.conftest import APP_S, REPO, chart_specs, open_view, rerun_until, tiny_model
from tests.test_app_units import CORPUS, texts

#: A seed no other test uses: its weights' hash (the results' key) is this file's own.
SEED = 2727


@contextmanager
def heavy_lane_held():
    """The server's heavy lane busy (its one worker held) until the block ends."""
    from app_pages.ui.work import LANES
    release, started = threading.Event(), threading.Event()
    LANES.submit_heavy(lambda: (started.set(), release.wait(3 * APP_S)), 4.0 * APP_S, estimate=0.0)
    assert started.wait(APP_S), "the heavy lane never started the test's job"
    try:
        yield
    finally:
        release.set()


@pytest.fixture
def env(tmp_path, monkeypatch):
    ckpts, corpora = tmp_path / "ckpts", tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "tinycorpus.txt").write_text(CORPUS, encoding="utf-8")
    save_checkpoint(tiny_model("lstm", 1, hidden=8, text=CORPUS, seed=SEED), ckpts / "units-lstm.safetensors",
                    {"corpus": "tinycorpus", "val_fraction": 0.1})
    save_checkpoint(tiny_model("rnn_tanh", 2, hidden=8, text=CORPUS, seed=SEED), ckpts / "grad-rnn.safetensors",
                    {"corpus": "tinycorpus"})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(corpora))
    return ckpts


def _open(page: str, **query) -> AppTest:
    return open_view(AppTest.from_file(str(REPO / "app.py"), default_timeout=APP_S), page, **query)


def _placeholders(at: AppTest, what: str) -> list[str]:
    return [i.value for i in at.info if i.value.startswith(what)]


def _verdict_shown(at: AppTest) -> bool:
    return "at chance level" in texts(at) and not _placeholders(at, "Scoring units")


def test_units_verdict_is_drawn_after_the_page_when_the_heavy_lane_is_busy(env):
    at = _open("app_pages/units.py", ckpt="units-lstm", **{"units.feat": "vowel"})
    rerun_until(at, _verdict_shown)                     # the sample's index and a first verdict
    with heavy_lane_held():
        at.selectbox(key="u_feat").set_value("punctuation").run()
        assert not at.exception, [e.value for e in at.exception]
        waiting = _placeholders(at, "Scoring units against controls")
        assert waiting and "queue" in waiting[0], texts(at)
        assert "at chance level" not in texts(at)       # the verdict is not there yet …
        heads = [h.value for h in at.subheader]         # … and the rest of the page is
        assert "Verdict: which units pass the controls" in heads
        assert "Unit finder: ranked by correlation" in heads and "Ranked all" in texts(at)
    rerun_until(at, _verdict_shown)
    assert any("verdict" in d.value.columns for d in at.dataframe)


def _chain_titles(at: AppTest) -> list[str]:
    return [c["layout"]["title"]["text"] for c in chart_specs(at)
            if c["layout"]["title"]["text"].startswith("Jacobian chain")]


def test_gradients_chain_is_drawn_after_the_rest_of_the_page(env, monkeypatch):
    import app_pages.ui.work as work
    # every chain and map priced over the page's limit for waiting (the shipped LSTM's chain of an
    # ordinary text is ~0.5 s, over it; a tiny model's is not)
    monkeypatch.setattr(work, "WAIT_SECONDS", 0.0)
    at = _open("app_pages/gradients.py", ckpt="grad-rnn", text=CORPUS[:300], **{"gr.layer": "0"})
    rerun_until(at, lambda a: bool(_chain_titles(a)))   # everything computed once, for layer 0
    with heavy_lane_held():
        at.selectbox(key="g_layer").set_value(1).run()  # only the chain depends on the layer
        assert not at.exception, [e.value for e in at.exception]
        waiting = _placeholders(at, "Multiplying Jacobians")
        assert waiting and "queue" in waiting[0], texts(at)
        assert not _chain_titles(at)
        titles = [c["layout"]["title"]["text"] for c in chart_specs(at)]
        assert titles[0].startswith("Gradient norm vs distance") and any(t.startswith("Gradient map") for t in titles)
    rerun_until(at, lambda a: bool(_chain_titles(a)) and not _placeholders(a, "Multiplying Jacobians"))


def test_gradients_map_waits_in_the_queue_too(env, monkeypatch):
    import app_pages.ui.work as work
    monkeypatch.setattr(work, "WAIT_SECONDS", 0.0)
    at = _open("app_pages/gradients.py", ckpt="grad-rnn", text=CORPUS[:200])
    rerun_until(at, lambda a: any(c["layout"]["title"]["text"].startswith("Gradient map") for c in chart_specs(a)))
    with heavy_lane_held():                              # a new text: curve at once, chain and map later
        at.sidebar.text_area[0].set_value(CORPUS[:120]).run()
        assert not at.exception, [e.value for e in at.exception]
        assert _placeholders(at, "Multiplying Jacobians") and _placeholders(at, "Backpropagating every loss")
        titles = [c["layout"]["title"]["text"] for c in chart_specs(at)]
        assert titles[0].startswith("Gradient norm vs distance")
        assert not any(t.startswith(("Gradient map", "Jacobian chain")) for t in titles)
        assert "Reading." in "\n".join(m.value for m in at.markdown)
    rerun_until(at, lambda a: any(c["layout"]["title"]["text"].startswith("Gradient map") for c in chart_specs(a)))
