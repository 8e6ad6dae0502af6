"""AppTest of the Train view: train a tiny model, watch curves and samples grow, stop, open the
model in Hidden states and Gradients; sessions share identical runs but never each other's models;
queue and bad-text messages. No browser."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz

from .conftest import REPO, chart_specs, tiny_model

TIMEOUT = 300      # s per AppTest run: a busy machine makes a test slower, never red
TEXT = ("the time traveller (for so it will be convenient to speak of him) was expounding a "
        "recondite matter to us. his grey eyes shone and twinkled, and his usually pale face was "
        "flushed and animated.\n") * 12


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_view_ckpts")
    rnnviz.save_checkpoint(tiny_model("lstm", 1, 8, text=TEXT), d / "timemachine-lstm.safetensors",
                           {"corpus": "test"})
    return d


@pytest.fixture
def new_session(ckpt_dir, monkeypatch):
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    st.cache_data.clear()
    st.cache_resource.clear()
    from app_pages.ui.trained import training_pool
    sessions = []

    def make() -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
        at.run()
        at.switch_page("app_pages/train.py")
        at.run()
        ok(at)
        sessions.append(at)
        return at

    yield make
    assert training_pool().close(60)


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def paste(at: AppTest, text: str, **knobs) -> None:
    at.radio(key="tr_source").set_value("Paste a text").run()
    at.text_area(key="tr_paste").input(text).run()
    for key, value in knobs.items():
        getattr(at, "select_slider" if key == "tr_hidden" else "number_input")(key=key).set_value(value)
    at.run()
    ok(at)


TINY = dict(tr_hidden=16, tr_T=8, tr_B=4, tr_steps=20_000)


def poll(at: AppTest, pred, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        ok(at)
        if pred(at):
            return
        assert time.monotonic() < deadline, [m.value for m in at.markdown][:5]
        time.sleep(0.3)


def step_of(at: AppTest) -> int:
    return int(at.metric[-4].value.split("/")[0].replace(",", "").strip())


def chart(at: AppTest, key: str) -> dict:
    for spec in chart_specs(at):
        if spec["layout"].get("meta", {}).get("chart") == key:
            return spec
    raise AssertionError(f"no chart {key}")


def samples(at: AppTest) -> str:
    return at.code[-1].value


def test_train_watch_stop_and_open_in_views(new_session):
    at = new_session()
    paste(at, TEXT, **TINY)
    at.button(key="tr_train").click().run()
    ok(at)
    poll(at, lambda a: step_of(a) >= 30 and samples(a).count("step") >= 2)
    first = len(chart(at, "train-loss")["data"][0]["x"])
    first_samples = samples(at)
    poll(at, lambda a: len(chart(a, "train-loss")["data"][0]["x"]) > first + 25)
    assert samples(at) != first_samples                         # a new sample came in
    grad = chart(at, "train-grad")["data"]
    assert [t["name"] for t in grad] == ["before clipping", "after clipping"]
    assert chart(at, "train-probe")["data"][0]["type"] == "heatmap"
    at.button(key="tr_stop").click().run()
    poll(at, lambda a: any("checkpoints of this session" in s.value for s in a.success))
    names = at.session_state["upload_names"]
    key = next(k for k in names if k.startswith("upload:") and "latest" in names[k])
    assert "(trained)" in names[key]
    at.button(key="tr_open_latest").click().run()
    ok(at)
    assert at.title[0].value == "Hidden states"
    assert at.selectbox(key="ckpt").value == key
    at.switch_page("app_pages/gradients.py")
    at.run()
    ok(at)
    assert at.selectbox(key="ckpt").value == key
    assert at.session_state["rnnviz_ctx"].model.config.hidden_size == 16


def test_sessions_share_runs_not_models_and_queue(new_session):
    a, b, c = new_session(), new_session(), new_session()
    for at in (a, b):
        paste(at, TEXT, **TINY)
        at.button(key="tr_train").click().run()
        ok(at)
    poll(b, lambda s: any("2 sessions follow this identical run" in m.value for m in s.caption))
    paste(c, TEXT, tr_seed=7, **TINY)                # a different run: waits for the one worker
    c.button(key="tr_train").click().run()
    assert any("Queued: position 1" in m.value for m in c.info), [m.value for m in c.info]
    a.button(key="tr_stop").click().run()            # shared: a stops following; b's run goes on
    assert any("you stopped following it" in e.value for e in a.error)
    b.button(key="tr_stop").click().run()
    poll(b, lambda s: any("checkpoints of this session" in m.value for m in s.success))
    assert any(k.startswith("upload:") for k in b.session_state["upload_names"])
    for other in (a, c):                             # nobody else sees b's model
        names = other.session_state["upload_names"] if "upload_names" in other.session_state else {}
        assert not names
        assert not [o for o in other.selectbox(key="ckpt").options if "trained" in o]


@pytest.mark.parametrize("text, words", [("", "empty"), ("a", "single character"),
                                         ("\x00\x01binary\x02" * 100, "binary")])
def test_bad_text_messages(new_session, text, words):
    at = new_session()
    paste(at, text or " ")
    if not text:
        at.text_area(key="tr_paste").input("").run()
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="tr_train").disabled


def test_a_setting_typed_just_before_train_is_used(new_session):
    """Typing a value and clicking Train at once (one script run carries both): the run uses the
    typed value, read when the button is clicked, not the value of the previous run (issue 27 #7)."""
    at = new_session()
    paste(at, TEXT, **{**TINY, "tr_steps": 400})
    at.number_input(key="tr_steps").set_value(30)
    at.number_input(key="tr_seed").set_value(5)
    at.button(key="tr_train").click().run()
    ok(at)
    assert "/ 30" in at.metric[-4].value, at.metric[-4].value
    at.button(key="tr_stop").click().run()
