"""The training-step scrubber on Generate and Units (#30): samples, units and their verdicts at a step
(AppTest; the tiny run of test_app_timeline, and the shipped 3-layer RNN for a verdict)."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz import generate as gen
from rnnviz import units as U
from rnnviz.corpora import CORPORA_DIR

from .conftest import REPO, chart_specs, colored_texts, open_view, rerun_until
from .test_app_timeline import TEXT, TIMEOUT, _captions, app, timeline_dir  # noqa: F401 (fixtures)


def test_generate_samples_the_model_at_the_step(app, timeline_dir):
    folder, steps = timeline_dir
    at = open_view(app, "app_pages/generate.py", TEXT, **{"gen.len": "40", "gen.seed": "7", "gen.prefix": "the "})
    assert at.select_slider(key="gen_tstep").value == steps[-1]
    final = colored_texts(at)[0]["chars"]
    at.select_slider(key="gen_tstep").set_value(steps[1]).run()
    assert not at.exception
    assert f"Training step {steps[1]:,} of {steps[-1]:,}" in _captions(at) and "held-out loss at this step" in _captions(at)
    snapshot = dict(rnnviz.load_timeline(folder / "timemachine-lstm.safetensors"))[steps[1]]
    expected = gen.generate(snapshot, "the ", 40, temperature=1.0, seed=7)       # the same sampler, that model
    shown = colored_texts(at)[0]["chars"][len("the "):]
    assert len(shown) == len(expected.generated) and shown != final[len("the "):]
    assert all(a == b for a, b in zip(shown, expected.generated) if b.isalnum())
    probs = list(expected.probs)
    assert {m.label: m.value for m in at.metric}["Mean P"] == f"{sum(probs) / len(probs):.3f}"
    assert at.query_params["gen.tstep"] == str(steps[1])


def test_units_rank_the_snapshot_units(app, timeline_dir):
    folder, steps = timeline_dir
    at = open_view(app, "app_pages/units.py", TEXT, **{"units.src": "typed", "units.tstep": "0",
                                                       "units.feat": "vowel"})
    assert at.select_slider(key="units_tstep").value == 0
    assert "Training step 0 of" in _captions(at)
    snapshot = dict(rnnviz.load_timeline(folder / "timemachine-lstm.safetensors"))[0]
    best = U.rank_units(U.build_index(snapshot, TEXT), "vowel", top=1).top[0]
    fig = chart_specs(at)[0]                                # the page ranks the step-0 model's units
    assert f"{best.unit.label}<br>r = {best.r:+.4f}<br>AUC = {best.auc:.4f}" in str(fig)
    at.select_slider(key="units_tstep").set_value(steps[-1]).run()
    assert not at.exception and chart_specs(at)[0] != fig


@pytest.mark.skipif(not (CORPORA_DIR / "timemachine.txt").exists(), reason="needs The Time Machine corpus")
def test_a_steps_verdict_is_the_quick_scorecard(monkeypatch):
    monkeypatch.delenv("RNNVIZ_CHECKPOINT_DIR", raising=False)       # the shipped checkpoints
    st.cache_data.clear()
    steps = [s for s, _ in rnnviz.load_timeline("timemachine-rnn-3layer")]
    at = open_view(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT), "app_pages/units.py",
                   TEXT, ckpt="timemachine-rnn-3layer", **{"units.tstep": str(steps[4]), "units.n": "5000"})
    # the verdict is computed in the heavy lane and drawn when ready (app_pages/ui/later.py)
    rerun_until(at, lambda a: any("correlational" in m.value for m in a.markdown), TIMEOUT)
    verdict = "\n".join(m.value for m in at.markdown if "correlational" in m.value)
    assert f"at training step {steps[4]:,}" in verdict and "'causal' is not judged" in verdict
    assert verdict.startswith("**0 causal**")
    table = at.dataframe[0].value
    assert set(table["verdict"]) <= {"correlational", "chance"}


def test_the_w_hh_spectrum_follows_the_step(app, timeline_dir):
    from rnnviz.gradients import whh_spectrum
    folder, steps = timeline_dir
    snaps = dict(rnnviz.load_timeline(folder / "timemachine-lstm.safetensors"))
    at = open_view(app, "app_pages/gradients.py", TEXT, **{"gr.tstep": str(steps[1]), "gr.layer": "1"})
    titles = []
    for step in (steps[1], steps[-1]):
        if step != steps[1]:
            at.select_slider(key="gr_tstep").set_value(step).run()
            assert not at.exception
        sp = whh_spectrum(snaps[step])
        title = next(c["layout"]["title"]["text"] for c in chart_specs(at)
                     if c["layout"]["title"]["text"].startswith("Eigenvalues of"))
        assert f"ρ = {sp.radius(1):.3g}" in title, (step, title)
        titles.append(title)
    assert titles[0] != titles[1]                           # two models, two spectra


def test_a_steps_charts_name_the_snapshot_in_their_meta(app, timeline_dir):
    """The charts' ``layout.meta.rnnviz`` (what the page benchmark waits on) names the snapshot at a
    step before the last, and the checkpoint itself at the last step, so a scrub step's charts can be
    told from the previous step's."""
    import hashlib
    _, steps = timeline_dir

    def meta_digests(at):
        return {c["layout"]["meta"]["rnnviz"] for c in chart_specs(at) if "rnnviz" in c["layout"].get("meta", {})}

    def digest(key):
        return hashlib.sha256(f"{key}\0{TEXT}".encode()).hexdigest()[:16]
    at = open_view(app, "app_pages/hidden_states.py", TEXT, **{"hs.tstep": str(steps[2])})
    assert meta_digests(at) == {digest(f"timemachine-lstm@{steps[2]}")}
    at.select_slider(key="hs_tstep").set_value(steps[-1]).run()
    assert not at.exception
    assert meta_digests(at) == {digest("timemachine-lstm")}
