"""The Gradients view on multi-layer models: the depth × time figure and its reading (AppTest)."""

from __future__ import annotations

import rnnviz

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


def test_knobs_on_one_layer_reach_the_depth_map_and_the_curves(app, ckpt_dir):  # noqa: F811
    """W_hh × 2 on layer 1 only: the page's per-layer curves and depth × time map are the
    autograd gradients of a copy with only layer 1's W_hh scaled (the text: the sidebar's default)."""
    import copy

    import numpy as np
    import torch

    from tests.test_gradients import cell_reference
    from tests.test_plots_states import decode

    at = _open(app, ckpt="relu2", gr_klayer="1", gr_scale="2.0", gr_len="30")
    assert at.selectbox(key="g_klayer").value == 1
    assert any("W_hh × 2 (layer 1 only)" in c.value for c in at.caption)
    model = rnnviz.load_model(ckpt_dir / "relu2.safetensors")
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.layers[1].weight_hh_l0.mul_(2.0)
    text = at.session_state["rnnviz_ctx"].trace.text[:30]
    ref = cell_reference(scaled, text, [len(text) - 2])
    charts = _charts(at)
    curve = charts[0]
    for l in range(2):
        y = np.asarray(decode(next(t for t in curve["data"] if t["name"] == f"‖∂L/∂H_t‖ layer {l}")["y"]), float)
        np.testing.assert_allclose(y, ref[l][:len(text) - 1].norm(dim=1).numpy(), rtol=1e-5)
    depth = next(c for c in charts if c["layout"]["title"]["text"].startswith("Gradient flow over depth"))
    z = decode(next(d for d in depth["data"] if d["type"] == "heatmap")["z"]).astype(float)
    np.testing.assert_allclose(z[1], np.log10(ref[1][:len(text) - 1].norm(dim=1).numpy()[::-1]), rtol=1e-5)
    at.selectbox(key="g_klayer").set_value("all").run()             # every layer: another map
    assert not at.exception and at.query_params["gr.klayer"] in ("all", ["all"])
    z_all = decode(next(d for d in next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith(
        "Gradient flow over depth"))["data"] if d["type"] == "heatmap")["z"]).astype(float)
    assert not np.allclose(z_all[0], z[0])

