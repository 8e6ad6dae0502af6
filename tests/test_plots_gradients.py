"""Figures of the Gradients view: built from real results, nothing non-finite silently dropped."""

from __future__ import annotations

import numpy as np
import pytest

from rnnviz.gradients import WhatIf, gradient_map, jacobian_chain, norm_curve, whh_spectrum
from rnnviz.plots import gradients as PG
from tests.conftest import SMALL_TEXT, tiny_model

HOSTILE = "<b>x</b>&\n\t "


def _names(fig):
    return [d.name for d in fig.data]


@pytest.mark.parametrize("cell,layers", [("rnn_tanh", 1), ("gru", 2), ("lstm", 2)])
def test_norm_curve_figure_one_trace_per_layer_on_a_log_axis(cell, layers):
    model = tiny_model(cell, layers)
    nc = norm_curve(model, SMALL_TEXT, loss="sum")
    fig = PG.norm_curve_figure(nc)
    assert fig.layout.yaxis.type == "log"
    curves = [n for n in _names(fig) if n and n.startswith("‖∂L/∂") and ":" not in n]
    assert len(curves) == layers * (2 if cell == "lstm" else 1)
    main = fig.data[0]
    np.testing.assert_allclose(np.asarray(main.y, dtype=float), nc.h_norms[0].numpy(), rtol=1e-6)
    assert list(main.x) == nc.distance.tolist()
    assert any(n and n.startswith("fit:") for n in _names(fig))


def test_nonfinite_and_zero_values_are_marked_not_dropped():
    relu = tiny_model("rnn_relu", 1)
    text = (SMALL_TEXT * 20)[:600]
    nc = norm_curve(relu, text, whatif=WhatIf(whh_scale=5.0))
    fig = PG.norm_curve_figure(nc)
    marked = [d for d in fig.data if d.name and ("NaN" in d.name or "inf" in d.name)]
    n_bad = nc.nonfinite["layer0.h"].inf + nc.nonfinite["layer0.h"].nan
    assert marked and sum(len(d.x) for d in marked) == n_bad
    assert "NaN" in fig.layout.title.text or "inf" in fig.layout.title.text
    ch = jacobian_chain(relu, text[:400], whatif=WhatIf(whh_scale=5.0))
    cfig = PG.jacobian_chain_figure(ch)
    assert any(d.name and "NaN" in d.name for d in cfig.data) and "overflowed" in cfig.layout.title.text
    gm = gradient_map(relu, text[:400], whatif=WhatIf(whh_scale=5.0))
    gfig = PG.gradient_map_figure(gm)
    assert "NaN" in gfig.layout.title.text
    # exact zeros from truncation are drawn at the bottom, and the cut is marked
    tanh = tiny_model("rnn_tanh", 1)
    tr = norm_curve(tanh, SMALL_TEXT, whatif=WhatIf(truncate=4))
    tfig = PG.norm_curve_figure(tr)
    zeros = [d for d in tfig.data if d.name and "exactly 0" in d.name]
    assert zeros and len(zeros[0].x) == len(SMALL_TEXT) - 1 - 4
    assert any("truncated" in (a.text or "") for a in tfig.layout.annotations)


def test_clipping_adds_the_update_curve():
    model = tiny_model("lstm", 1)
    nc = norm_curve(model, SMALL_TEXT, loss="sum", whatif=WhatIf(clip_norm=1e-3))
    fig = PG.norm_curve_figure(nc)
    upd = [d for d in fig.data if d.name and "update sees" in d.name]
    assert upd
    np.testing.assert_allclose(np.asarray(upd[0].y, float), nc.h_norms[0].numpy() * nc.clip.factor, rtol=1e-6)


@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm"))
def test_jacobian_chain_figure_has_both_norms_and_fits(cell):
    ch = jacobian_chain(tiny_model(cell, 1), SMALL_TEXT)
    fig = PG.jacobian_chain_figure(ch)
    names = _names(fig)
    assert any("spectral" in n for n in names) and any("Frobenius" in n for n in names)
    assert any(n.startswith("fit (spectral)") for n in names)
    if cell == "lstm":
        assert any("C_t" in n for n in names)
    np.testing.assert_allclose(np.asarray(fig.data[0].y, float), 10 ** ch.log10_spectral.numpy(), rtol=1e-9)


def test_gradient_map_figure_blank_above_diagonal_and_escaped_labels():
    model = tiny_model("gru", 1, text=SMALL_TEXT + HOSTILE)
    text = "ab" + HOSTILE + "cd"
    gm = gradient_map(model, text)
    fig = PG.gradient_map_figure(gm)
    hm = fig.data[0]
    z = np.asarray(hm.z, dtype=float)
    assert z.shape == (len(text) - 1, len(text))
    assert np.isnan(z[0, 1:]).all() and np.isfinite(z[-1, :-1]).all() and np.isnan(z[-1, -1])
    labels = list(hm.x) + list(hm.y)
    assert not any("<b>" in l for l in labels) and any("&lt;" in l for l in labels)
    assert any("⏎" in l for l in labels) and any("␣" in l for l in labels)
    # every cell finite: no per-cell notes travel to the page, and the hover asks for none
    assert hm.text is None and "%{text}" not in hm.hovertemplate
    # the log₁₀ values as float32, equal to the map's own (every cell at or below the diagonal)
    G = gm.maps[0].double().numpy()
    up = gm.upstream.numpy()
    assert np.asarray(hm.z).dtype == np.float32
    assert np.allclose(z[up], np.log10(G[up]), rtol=1e-6, atol=1e-6)
    # exact zeros (truncation) get their note in the hover
    cut = PG.gradient_map_figure(gradient_map(model, text, whatif=WhatIf(truncate=2)))
    notes = np.asarray(cut.data[0].text, dtype=object)
    assert "%{text}" in cut.data[0].hovertemplate and (notes == " — actually exactly 0 (bottom colour)").any()


def test_gradient_map_figure_pools_large_maps():
    model = tiny_model("rnn_tanh", 1, hidden=4)
    text = (SMALL_TEXT * 20)[:850]
    gm = gradient_map(model, text)
    fig = PG.gradient_map_figure(gm)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape[0] <= PG.MAP_DISPLAY_MAX and z.shape[1] <= PG.MAP_DISPLAY_MAX
    assert "max-pooled" in fig.layout.title.text


def test_pool_keeps_nan_and_max():
    a = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, -np.inf]])
    out = PG._pool(a, 1, 2)
    assert out.shape == (1, 2) and np.isnan(out[0, 0]) and out[0, 1] == 3.0


@pytest.mark.parametrize("cell", ("rnn_relu", "gru", "lstm"))
def test_spectrum_figures(cell):
    sp = whh_spectrum(tiny_model(cell, 2), WhatIf(whh_scale=1.5))
    fig = PG.eigenvalue_figure(sp, 1)
    assert fig.data[0].name == "|λ| = 1"
    np.testing.assert_allclose(np.hypot(fig.data[0].x, fig.data[0].y), 1.0)
    ev = sp.blocks[1][sp.main].eigenvalues.numpy()
    np.testing.assert_allclose(fig.data[2].x, ev.real)
    np.testing.assert_allclose(fig.data[2].y, ev.imag)
    assert f"{sp.radius(1):.3g}" in fig.layout.title.text
    sv = PG.singular_values_figure(sp, 0)
    np.testing.assert_allclose(sv.data[0].y, sp.blocks[0][sp.main].singular_values.numpy())


def test_wrap_title_keeps_every_word_and_line_width():
    from rnnviz.plots.common import wrap_title
    title = ("Gradient norm vs distance from the loss at the last character"
             "<br><sup>clipped at θ = 1.0; truncated after 20 steps back in time</sup>")
    out = wrap_title(title, 24)
    lines = out.split("<br>")
    mains = [l for l in lines if not l.startswith("<sup>")]
    subs = [l[5:-6] for l in lines if l.startswith("<sup>")]
    assert all(len(l) <= 24 for l in mains) and all(len(l) <= int(24 / 0.7) for l in subs)
    assert all(l.endswith("</sup>") for l in lines if l.startswith("<sup>"))
    assert " ".join(mains).split() == "Gradient norm vs distance from the loss at the last character".split()
    assert " ".join(subs).split() == "clipped at θ = 1.0; truncated after 20 steps back in time".split()
    assert wrap_title("short", 24) == "short" and wrap_title("", 10) == ""
    assert wrap_title("averyveryverylongwordwithoutspaces", 5) == "averyveryverylongwordwithoutspaces"
    assert "<br>" not in wrap_title("at step s = 10", 10).split("s")[-1]   # "s = 10" is never split
