"""The Gradients view on multi-layer models: the depth × time figure and its reading (AppTest)."""

from __future__ import annotations

from .test_app_gradients import _charts, _markdown, _open, app, ckpt_dir  # noqa: F401 (fixtures)


def test_multi_layer_model_shows_depth_and_time(app):
    at = _open(app, ckpt="timemachine-gru")
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    depth = [c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Gradient flow over depth")]
    assert len(depth) == 1, titles
    heat = next(d for d in depth[0]["data"] if d["type"] == "heatmap")
    z = heat["z"]                                                # one row per layer
    assert (z["shape"].split(",")[0] if isinstance(z, dict) else str(len(z))).strip() == "2"
    md = _markdown(at)
    assert "Depth versus time." in md and "layer boundary" in md


def test_one_layer_model_has_no_depth_section(app):
    at = _open(app, ckpt="timemachine-lstm")
    assert not any(c["layout"]["title"]["text"].startswith("Gradient flow over depth") for c in _charts(at))
    assert "Depth versus time." not in _markdown(at)
