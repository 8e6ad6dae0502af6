"""The Units view's "units / dictionary features" switch: for a checkpoint with a shipped sparse
autoencoder (:mod:`rnnviz.units.sae`), the verdict table of its dictionary features for the chosen
feature (the same scorecard as units, :class:`rnnviz.units.basis.SAEBasis`, with the controls made
by ``python -m tools.sae_report``), the units-vs-features counts, each feature's top-activating
contexts on the held-out slice and the feature as coloured text on the sidebar text.
Widgets and layout only; the numbers come from ``rnnviz.units``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.ui.cache import UPLOAD_PREFIX
from app_pages.ui.context import Context
from app_pages.ui.pin import Pin, pin_button, pinned, unit_table
from app_pages.ui.scorecard import (ERRORS, NOT_ABLATED, VERDICT_ORDER, ablation_cells, feature_scorecard,
                                   not_ablated_note, verdict_panel)
from app_pages.ui.settings import settings
from app_pages.ui.work import LIMITS, limit_message, run_heavy
from rnnviz import units as U
from rnnviz.checkpoint import CheckpointError, resolve_checkpoint
from rnnviz.names import act_name
from rnnviz.plots import units as uplots
from rnnviz.ref import ModelRef
from rnnviz.trace import trace
from rnnviz.units.basis import SAEBasis, feature_name, sae_digest
from rnnviz.units.dictionary import compare_verdicts, feature_values, shipped_saes, top_contexts
from rnnviz.units.names import unit_name
from rnnviz.units.sae import SAE, SAEError, load_sae
from rnnviz.units.scorecard_cache import PAGE_MAX_CAUSAL, load_controls, scorecard_sample

MODES = ("units", "dictionary features")


def saes_of(model_key: str, ref: ModelRef) -> list[tuple[int, str, Path]]:
    """(layer, state, path) of the SAEs shipped beside a checkpoint and trained on these weights
    (none for an upload, or for a snapshot of its training timeline)."""
    if model_key.startswith(UPLOAD_PREFIX):
        return []
    try:
        found = shipped_saes(resolve_checkpoint(model_key, settings().checkpoint_dir))
    except CheckpointError:
        return []
    out = []
    for layer, state, path in found:
        try:
            if cached_sae(str(path), path.stat().st_mtime).meta.get("fingerprint") == ref.digest:
                out.append((layer, state, path))
        except (SAEError, OSError):
            continue
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_sae(path: str, mtime: float) -> SAE:
    return load_sae(path)


def saes_for(model_key: str, ref: ModelRef) -> dict[tuple[int, str], SAE]:
    """(layer, state) → the SAE shipped beside ``model_key`` for these weights (:func:`saes_of`)."""
    out = {}
    for layer, state, path in saes_of(model_key, ref):
        try:
            out.setdefault((layer, state), cached_sae(str(path), path.stat().st_mtime))
        except (SAEError, OSError):
            continue
    return out


def model_saes(ctx: Context) -> dict[tuple[int, str], SAE]:
    """The view's model's SAEs (:func:`saes_for`; none at a training step)."""
    return {} if ctx.train_step is not None else saes_for(ctx.model_key, ctx.ref)


def feature_sizes(ctx: Context) -> dict[tuple[int, str], int]:
    """(layer, state) → how many features this model's shipped SAE there has (what a pin may name)."""
    return {k: sae.n_features for k, sae in model_saes(ctx).items()}


def current_pin(ctx: Context) -> Pin | None:
    """The pinned unit or feature, checked against this model and its shipped SAEs."""
    return pinned(ctx.model, feature_sizes(ctx))


def _follow(pin: Pin | None, layer: int, state: str, widget: str) -> None:
    """Open a feature picker (its session key, before it is drawn) on a newly pinned feature."""
    if pin is None or not pin.feature or (pin.layer, pin.state) != (layer, state):
        return
    marker = f"_{widget}_pinned"
    if st.session_state.get(marker) != pin.name:
        st.session_state[marker] = pin.name
        st.session_state[widget] = pin.index


def pin_values(ctx: Context, pin: Pin, cache) -> list[float]:
    """The pinned unit's or feature's value at every step of a trace ``cache``: a unit's state,
    or the feature's activation through its SAE (:func:`rnnviz.units.dictionary.feature_values`)."""
    if not pin.feature:
        return cache[act_name(pin.layer, pin.state)][:, pin.index].tolist()
    sae = model_saes(ctx)[(pin.layer, pin.state)]
    return feature_values(sae, cache, pin.layer, pin.state, pin.index).tolist()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def sae_scorecard(ref: ModelRef, path: str, sae_key: str, feature: str, _model, _sae: SAE,
                  layer: int, state: str) -> pd.DataFrame | None:
    """The scorecard of the SAE's features for ``feature`` on the held-out slice, with the SAE's
    stored controls; None when they do not fit (then the page says how to make them)."""
    sample, _ = scorecard_sample(_model, corpora_dir=settings().corpora_dir)
    cache = load_controls(path)
    basis = SAEBasis(_sae, layer, state)
    if not cache or cache.get("fingerprint") != ref.digest or cache.get("basis") != basis.key \
            or feature not in (cache.get("features") or {}) or cache.get("chars") != len(sample):
        return None
    return run_heavy("index", U.scorecard, _model, sample, [feature], max_causal=PAGE_MAX_CAUSAL,
                     cache=cache, basis=basis)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def slice_activations(ref: ModelRef, sae_key: str, _model, _sae: SAE, layer: int, state: str):
    """(held-out slice, its (T, F) feature activations)."""
    sample, _ = scorecard_sample(_model, corpora_dir=settings().corpora_dir)
    tr = run_heavy("trace", trace, _model, sample, preprocess_text=False)
    return sample, _sae.encode(tr[act_name(layer, state)].float())


def features_or_units(ctx: Context, feature: str, playing: bool = False) -> None:
    """The verdict panel of units, or (switch) of the shipped SAE's dictionary features (not at a
    training step: an SAE is trained on the final weights' states). ``playing``: see verdict_panel."""
    saes = saes_of(ctx.model_key, ctx.ref) if ctx.train_step is None else []
    if not saes:
        verdict_panel(ctx, feature, playing)
        return
    labels = [act_name(l, s) for l, s, _ in saes]
    pin = current_pin(ctx)
    if pin is not None and pin.feature and st.session_state.get("_u_basis_pinned") != pin.name:
        st.session_state["_u_basis_pinned"] = pin.name          # a newly pinned feature: open on it
        st.session_state["u_basis"] = MODES[1]
        st.session_state["u_sae"] = act_name(pin.layer, pin.state)
    mode = st.radio("Score", MODES, horizontal=True, key="u_basis",
                    help="Hidden units, or the dictionary features of a sparse autoencoder trained on the "
                         "states (shipped beside this checkpoint)")
    if mode != MODES[1]:
        verdict_panel(ctx, feature)
        return
    pick = st.selectbox("SAE on", labels, key="u_sae") if len(saes) > 1 else labels[0]
    layer, state, path = saes[labels.index(pick)]
    features_panel(ctx, feature, layer, state, path)


def _summary(sae: SAE, layer: int, state: str) -> None:
    m = sae.meta
    h = m.get("held_out", {})
    st.markdown(f"**Sparse autoencoder on layer{layer}.{state}**: {sae.n_features} features on "
                f"{sae.dim} dimensions; on held-out text R² = **{h.get('r2', float('nan')):.3f}**, "
                f"{h.get('dead_fraction', float('nan')):.1%} of features never fire, "
                f"{h.get('mean_l0', float('nan')):.1f} features on per character.")
    st.caption("a(h) = ReLU(W_enc (h − b_dec) + b_enc), ĥ = W_dec a + b_dec with unit-norm columns d_f. "
               "A feature beats the controls when it tracks the text feature better than 95 % of the "
               "features of SAEs trained the same way on untrained models, with a corrected "
               "block-permutation p below 0.05; causal when replacing its contribution a_f·d_f by its mean "
               "raises the loss where the feature is on, by z ≥ 2 against random features.")


def feature_rows(df: pd.DataFrame, layer: int, state: str, top: int = 12) -> pd.DataFrame:
    d = df.assign(order=df.verdict.map(VERDICT_ORDER)).sort_values(["order", "effect"], ascending=[True, False])
    d = d.head(top)
    return pd.DataFrame({
        "feature": [feature_name(layer, state, r.unit) for r in d.itertuples()],
        d.kind.iloc[0] if len(d) else "stat": d.stat.round(3), "control p95": d.random_init_p95.round(3),
        "p (Holm)": d.p_value.map(lambda p: f"{p:.1e}"), **ablation_cells(d), "verdict": d.verdict,
        "index": d.unit.astype(int)})


def features_panel(ctx: Context, feature: str, layer: int, state: str, path: Path) -> None:
    st.subheader("Verdict: which dictionary features pass the controls")
    try:
        sae = cached_sae(str(path), path.stat().st_mtime)
        key = sae_digest(sae)
        with st.spinner("Scoring every dictionary feature against the stored controls…"):
            df = sae_scorecard(ctx.ref, str(path), key, feature, ctx.model, sae, layer, state)
    except (*ERRORS, SAEError, OSError) as err:
        st.info(f"No scorecard for the dictionary features: {err}")
        return
    except LIMITS as err:
        st.info(limit_message("scorecard", err))
        return
    _summary(sae, layer, state)
    if df is None:
        st.info(f"The features have no stored controls for {feature!r} on this checkpoint; "
                "`python -m tools.sae_report` makes them.")
        return
    rows = feature_rows(df, layer, state)
    _comparison(ctx, df, feature, layer, state)
    unit_table(rows.drop(columns="index"), key="u_sae_rows", column="feature")   # a click pins the feature
    st.caption("Click a row to pin its feature: followed as coloured text on every view."
               + (" " + not_ablated_note("features") if (rows["Δloss on"] == NOT_ABLATED).any() else ""))
    contexts_panel(ctx, sae, key, layer, state, rows)


def _comparison(ctx: Context, df: pd.DataFrame, feature: str, layer: int, state: str) -> None:
    try:
        units, _ = feature_scorecard(ctx.ref, ctx.model_key, feature, ctx.model)
    except (*ERRORS, *LIMITS):
        units = None
    c = df.verdict.value_counts()
    line = (f"**{int(c.get('causal', 0))} causal**, **{int(c.get('correlational', 0))} correlational** of "
            f"{len(df)} dictionary features for *{df.attrs['rules'][feature]}*")
    if units is not None:
        same = units[(units.layer == layer) & (units.state == state)]
        cmp = compare_verdicts(same, df, lambda r: unit_name(r.layer, r.state, r.unit),
                               lambda r: feature_name(layer, state, r.unit)).iloc[0]
        line += (f"; units of layer{layer}.{state}: **{cmp['units causal']} causal**, "
                 f"**{cmp['units correlational']} correlational** of {len(same)}. Best unit: "
                 f"{cmp['best unit']}; best feature: {cmp['best feature']}. Each against its own chance "
                 f"level: control p95 {cmp['units control p95']} for units, {cmp['features control p95']} "
                 "for features.")
    st.markdown(line)


def contexts_panel(ctx: Context, sae: SAE, key: str, layer: int, state: str, rows: pd.DataFrame) -> None:
    """A feature's top-activating contexts on the held-out slice, and it as coloured sidebar text."""
    st.subheader("A dictionary feature's top-activating contexts")
    choices = [int(i) for i in rows["index"]] or [0]
    pin = current_pin(ctx)
    _follow(pin, layer, state, "u_sae_feat")
    if pin is not None and pin.feature and (pin.layer, pin.state) == (layer, state) and pin.index not in choices:
        choices = [pin.index] + choices
    f = st.selectbox("Feature", choices, key="u_sae_feat", format_func=lambda j: feature_name(layer, state, j))
    pin_button(Pin(layer, state, f, feature=True), pin, key="u_sae_pin")
    sample, acts = slice_activations(ctx.ref, key, ctx.model, sae, layer, state)
    tops = top_contexts(acts[:, f], sample, k=10, width=24)
    if not tops:
        st.caption(f"{feature_name(layer, state, f)} never fires on the held-out slice (a dead feature).")
    else:
        st.dataframe(pd.DataFrame({"step": [c.t for c in tops], "activation": [round(c.value, 3) for c in tops],
                                   "before": [c.before for c in tops], "char": [repr(c.char) for c in tops],
                                   "after": [c.after for c in tops]}), hide_index=True, width="stretch")
    tr = ctx.trace
    if tr is not None and len(tr):
        vals = sae.encode(tr[act_name(layer, state)].float())[:, f].tolist()
        st.html(uplots.unit_text_html(tr.chars, vals, feature_name(layer, state, f), font_size=ctx.font_size + 2,
                                      caption=f"{feature_name(layer, state, f)} on the sidebar text (red: "
                                              "the feature is on; it is never negative)"))


def feature_verdicts(path: Path | None, ref: ModelRef, sae: SAE | None = None) -> dict[int, str]:
    """Feature index → "whitespace · correlational, …" from the SAE's stored scorecard (made from
    these weights and, given ``sae``, for that SAE), for the features that beat the controls for
    some built-in feature."""
    cache = load_controls(path) if path is not None else None
    if not cache or cache.get("fingerprint") != ref.digest:
        return {}
    if sae is not None and (cache.get("basis") or {}).get("sae_sha256") != sae_digest(sae):
        return {}
    out: dict[int, list[str]] = {}
    for feat, verdicts in (cache.get("verdicts") or {}).items():
        for name, verdict in verdicts.items():
            j = int(name.rsplit("[", 1)[1].rstrip("]"))
            out.setdefault(j, []).append(f"{feat.replace('_', ' ')} · {verdict}")
    return {j: ", ".join(v) for j, v in out.items()}


def feature_over_text(ctx: Context, layer: int, kind: str, pin: Pin | None) -> None:
    """Hidden states: one dictionary feature of the shipped SAE on this layer's state, as coloured
    text (the pinned feature, else the features that pass the controls first, with their
    verdicts), and a pin button."""
    sae = model_saes(ctx).get((layer, kind))
    tr = ctx.trace
    if sae is None or tr is None or not len(tr):
        return
    st.subheader("One dictionary feature over the text")
    named = feature_verdicts(sae_file(ctx, layer, kind), ctx.ref, sae)
    order = sorted(named) + [j for j in range(sae.n_features) if j not in named]
    _follow(pin, layer, kind, "hs_sae_feat")
    f = st.selectbox("Dictionary feature (the pinned one, else those that pass the scorecard first)", order,
                     key="hs_sae_feat",
                     format_func=lambda j: feature_name(layer, kind, j) + (f" · {named[j]}" if j in named else ""))
    pin_button(Pin(layer, kind, f, feature=True), pin, key="hs_sae_pin")
    vals = feature_values(sae, tr, layer, kind, f).tolist()
    st.html(uplots.unit_text_html(tr.chars, vals, feature_name(layer, kind, f), font_size=ctx.font_size + 2,
                                  caption=f"{feature_name(layer, kind, f)}: a feature of the sparse autoencoder "
                                          f"on {act_name(layer, kind)} (R² {sae.meta.get('held_out', {}).get('r2', float('nan')):.2f} "
                                          "on held-out text), red where it is on; the Units view scores it."))


def sae_file(ctx: Context, layer: int, state: str) -> Path | None:
    return next((p for l, s, p in saes_of(ctx.model_key, ctx.ref) if (l, s) == (layer, state)), None)


def named_features(ctx: Context, layer: int, kind: str, pin: Pin | None) -> tuple[SAE, dict[int, str]] | None:
    """Hidden states' named rows for features: the SAE on ``layer{layer}.{kind}`` and feature →
    "whitespace · correlational" for the features its stored scorecard passes (and the pinned
    feature, "★ pinned"); None when this model has no SAE there or nothing to name."""
    sae = model_saes(ctx).get((layer, kind))
    if sae is None:
        return None
    named = feature_verdicts(sae_file(ctx, layer, kind), ctx.ref, sae)
    named = dict(sorted(named.items(), key=lambda kv: ("causal" not in kv[1], kv[0])))    # causal first
    if pin is not None and pin.feature and (pin.layer, pin.state) == (layer, kind):
        named = {pin.index: "★ pinned" + (f" · {named[pin.index]}" if pin.index in named else ""), **named}
    return (sae, named) if named else None
