"""The training-step scrubber on Hidden states and Gradients (AppTest; a tiny run trained here)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz.training import TrainConfig, Trainer

from .conftest import REPO, chart_specs, open_view
from .test_train import synthetic_text

TIMEOUT = 300      # s per AppTest run: a busy machine makes a test slower, never red
TEXT = "the time machine said he was not so"


def train_with_timeline(folder, name: str = "timemachine-lstm", snapshots: int = 6) -> list[int]:
    """A 2-layer LSTM (h = 12) trained 30 steps with a timeline into ``folder``; returns its steps."""
    cfg = TrainConfig(cell="lstm", hidden=12, layers=2, batch_size=8, num_steps=16, lr=1e-2,
                      max_steps=30, eval_every=10, patience=0, seed=3, progress=False,
                      timeline=snapshots, out=str(folder / f"{name}.safetensors"))
    trainer = Trainer(cfg, synthetic_text(1500))
    trainer.run()
    trainer.finish()
    return [s for s, _ in rnnviz.load_timeline(cfg.out)]


@pytest.fixture(scope="module")
def timeline_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("timeline_ckpts")
    steps = train_with_timeline(d)
    return d, steps


@pytest.fixture
def app(timeline_dir, monkeypatch):
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(timeline_dir[0]))
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)


def _open(at: AppTest, page: str, **query) -> AppTest:
    return open_view(at, page, TEXT, **query)


def _captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.mark.parametrize("page,prefix", [("app_pages/hidden_states.py", "hs"),
                                         ("app_pages/gradients.py", "gr")])
def test_scrubbing_shows_the_model_at_that_step(app, timeline_dir, page, prefix):
    steps = timeline_dir[1]
    at = _open(app, page)
    slider = at.select_slider(key=f"{prefix}_tstep")
    assert list(slider.options) == [f"{s:,}" for s in steps] and slider.value == steps[-1]
    final = chart_specs(at)[0]
    assert f"Training step {steps[-1]:,} of {steps[-1]:,}" in _captions(at)
    slider.set_value(steps[0]).run()
    assert not at.exception
    assert f"Training step 0 of {steps[-1]:,}" in _captions(at)
    assert "held-out loss at this step" in _captions(at) and "at the checkpoint" in _captions(at)
    assert chart_specs(at)[0] != final                         # another model, another picture
    assert at.query_params[f"{prefix}.tstep"] == "0"


def test_a_link_opens_a_step_and_a_bad_one_is_named(app, timeline_dir):
    steps = timeline_dir[1]
    at = _open(app, "app_pages/hidden_states.py", **{"hs.tstep": str(steps[1])})
    assert at.select_slider(key="hs_tstep").value == steps[1]
    at = _open(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT),
               "app_pages/hidden_states.py", **{"hs.tstep": "12345678"})
    assert at.select_slider(key="hs_tstep").value == steps[-1]
    assert any("hs.tstep" in c.value for c in at.caption if "Ignored from the link" in c.value)


def test_play_runs_to_the_last_step(app, timeline_dir):
    steps = timeline_dir[1]
    at = _open(app, "app_pages/hidden_states.py", **{"hs.tstep": "0"})
    at.button(key="hs_tplaybtn").click().run()
    assert not at.exception
    assert at.select_slider(key="hs_tstep").value == steps[-1]
    assert at.button(key="hs_tplaybtn")                           # ▶ Play is back


def test_a_model_without_timeline_then_one_with_opens_at_the_last_step(timeline_dir, tmp_path, monkeypatch):
    from .conftest import tiny_model
    import shutil
    for f in timeline_dir[0].iterdir():
        shutil.copy(f, tmp_path / f.name)
    rnnviz.save_checkpoint(tiny_model("gru", 1, 8), tmp_path / "timemachine-gru.safetensors", {"corpus": "t"})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))
    at = _open(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT), "app_pages/hidden_states.py",
               ckpt="timemachine-gru")
    assert not any("Training step" in c for c in _captions(at).splitlines())
    at.selectbox(key="ckpt").set_value("timemachine-lstm").run()
    assert not at.exception
    assert at.select_slider(key="hs_tstep").value == timeline_dir[1][-1]
