"""Units: what does a hidden unit track? Unit finder, hypothesis → match, counterfactual edits,
ablation and a PCA projection. All numbers come from ``rnnviz.units`` (definitions in its
docstring); this page only wires widgets, caches and the URL (keys ``units.*``, widgets ``u_*``)."""

from __future__ import annotations

import hashlib

import streamlit as st
import torch

from app_pages.ui.charts import controls, show_chart
from app_pages.ui.features import current_pin, features_or_units, pin_values
from app_pages.ui.context import context
from app_pages.ui.lecture import explanation
from app_pages.ui.pin import pin_point, pinned_panel, preselect, unit_table
from app_pages.ui.text import MAX_URL_TEXT, notices
from app_pages.ui.timeline import play_next, playing, training_step
from app_pages.ui.unit_sample import SOURCES, sample_index
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.work import LIMITS, reduced, run_heavy
from app_pages.ui.settings import settings
from rnnviz import TextError, Trace
from rnnviz.serving import cost
from rnnviz import features as F
from rnnviz import units as U
from rnnviz.plots import units as uplots
from rnnviz.ref import ModelRef
from rnnviz.names import act_name
from rnnviz.regex_run import REGEX_WORKERS
from rnnviz.regex_run import queue as regex_queue

TABS = ("Unit finder", "Hypothesis", "Counterfactual", "Ablation", "Projection")
REGEX = "regular expression…"
SAMPLE_SIZES = (5_000, 10_000, 20_000, 40_000)
USER_SAMPLE_MAX = 40_000
EXCERPT = 400
#: URL keys of the Hypothesis and Ablation tabs (declared in app_pages.ui.params).
HYPOTHESIS_KEYS = ("units.how", "units.find", "units.a", "units.b", "units.auto", "units.thr", "units.frac")
ABLATION_KEYS = ("units.layer", "units.kind", "units.unit", "units.mode", "units.val")
ERRORS = (U.UnitsError, F.FeatureError, TextError, *LIMITS)   # LIMITS: refused or stopped by cost

ctx = context()
view_params("units.")
st.title("Units")
with explanation("units"):
    st.caption("Find what single hidden units track, test a hypothesis on a span, edit the text and "
               "watch how long the network remembers, silence a unit, and see the state move in 2-D.")
ctx = training_step(ctx, "units")       # a checkpoint with a training timeline: the model at a step
if not notices(ctx):
    st.stop()

model = ctx.model
tr: Trace = ctx.trace
T = len(tr)
cfg = model.config
if (pin := current_pin(ctx)) is not None:       # Units opens on the pinned unit or feature (#28, #29)
    pinned_panel(pin, tr.chars[:MAX_URL_TEXT], pin_values(ctx, pin, tr)[:MAX_URL_TEXT], ctx.font_size + 2,
                 "Its top-activating contexts: the verdict's dictionary features switch." if pin.feature
                 else "The Ablation tab opens on it.")
    preselect(pin, ("u_layer", "u_kind", "u_unit"), ABLATION_KEYS[:3], "_u_pinned")


# =========================================================================== cached computations
@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def ranking(ref: ModelRef, text_digest: str, feature: str, by: str, top: int,
            _index: U.UnitIndex) -> U.FinderResult:
    return U.rank_units(_index, feature, by=by, top=top)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_counterfactual(ref: ModelRef, text: str, a: int, b: int, rep: str,
                          _model) -> U.Counterfactual:
    return run_heavy("forward2", U.counterfactual, _model, text, a, b, rep)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_ablation(ref: ModelRef, text: str, layer: int, unit: int, kind: str,
                    mode: str, value: float, _model) -> U.Ablation:
    return run_heavy("forward2", U.ablate, _model, text, layer, unit, kind=kind, mode=mode, value=value)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def state_options() -> list[str]:
    return [act_name(l, k) for l in range(cfg.num_layers) for k in U.unit_kinds(model)]


# =========================================================================== the sample
def get_index(stats_ok: bool = False, key: str = "") -> U.UnitIndex | U.UnitStats | None:
    """The index for the chosen sample (built on first use; a notice instead of an error), or with
    ``stats_ok`` the checkpoint's shipped statistics when its corpus is missing (see unit_sample)."""
    use("units.src", "units.n", n=U.SAMPLE_CHARS, sizes=list(SAMPLE_SIZES))
    with controls("u-sample"), st.expander("Sample the units are measured on", expanded=False):
        c1, c2 = st.columns([2, 1])
        src = c1.radio("Sample", tuple(SOURCES), horizontal=True, key="u_src", format_func=SOURCES.get)
        n = c2.select_slider("Characters", SAMPLE_SIZES, key="u_n")
        own = ""
        if src == "own":
            own = st.text_area("Sample text", key="u_own", height=120,
                               help=f"At most {USER_SAMPLE_MAX:,} characters are used.")[:USER_SAMPLE_MAX]
    sync("units.src", "units.n")
    return sample_index(ctx, src, n, own, stats_ok, key)


# =========================================================================== tabs
use("units.tab", tabs=TABS)
tabs = st.tabs(list(TABS), key="u_tab", on_change="rerun")
sync("units.tab")


def is_open(k: int) -> bool:
    """Only the selected tab runs (None: state tracking unavailable → run every tab)."""
    flag = getattr(tabs[k], "open", None)
    return True if flag is None else bool(flag)


# --------------------------------------------------------------------------- unit finder
def unit_finder() -> None:
    index = get_index(stats_ok=True, key="finder")
    if index is None:
        return
    names = list(F.FEATURE_NAMES) + [REGEX]
    use("units.feat", "units.re", "units.by", "units.top", features=names)
    with controls("u-finder"):
        c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
        feat = c1.selectbox("Feature", names, key="u_feat",
                            format_func=lambda n: n if n == REGEX else f"{n} — {F.FEATURES[n].description}")
        pattern = c2.text_input("Regular expression (marks every matched character)", key="u_regex",
                                disabled=feat != REGEX, max_chars=F.MAX_PATTERN_CHARS)
        by = c3.radio("Rank by", ("auc", "r"), key="u_by", format_func={"auc": "AUC", "r": "|r|"}.get)
        top = c4.number_input("Top", 3, 30, key="u_top")
    sync("units.feat", "units.re", "units.by", "units.top")
    name = f"{F.REGEX_PREFIX}{pattern}" if feat == REGEX else feat
    if feat == REGEX and (busy := regex_queue())[0] >= REGEX_WORKERS:
        st.caption(f"The server's pattern workers are busy ({busy[0]} running): yours is number "
                   f"{busy[1] + 1} in the queue and runs when one is free.")
    try:
        res = index.rank(name, by=by, top=int(top)) if isinstance(index, U.UnitStats) \
            else ranking(ctx.ref, index.key + digest(index.text), name, by, int(top), index)
    except ERRORS as err:
        st.warning(str(err))
        return
    features_or_units(ctx, name, playing("units"))
    st.subheader("Unit finder: ranked by correlation")
    st.caption(f"Ranked all {index.num_units:,} units in {res.seconds * 1000:.0f} ms. AUC: how well "
               f"“activation ≥ θ” separates {res.label_rule} from the rest, over every θ (0.5 = "
               "chance, 1 = perfect, 0 = perfect but inverted).")
    # ranked on the corpus's index, not on the sidebar text: kept across text commits
    show_chart(uplots.ranked_units_figure(res, font_size=ctx.font_size), ctx, key="u_rank",
               text_independent=True, on_click=pin_point)
    unit_table(uplots.ranked_units_rows(res), key="u_rank_rows")
    st.caption("Click a bar or a row to pin its unit: highlighted in Hidden states, first in "
               "Step-through, drawn in Compare.")
    # the top units as coloured text: on the sidebar text, and on the sample where the feature is on
    st.subheader("The top units as coloured text")
    if isinstance(index, U.UnitStats):   # no sample text here: the sidebar text only
        for s in res.top[:3]:
            on_sidebar_text(s, f" (r = {s.r:+.3f}, AUC = {s.auc:.3f} on the held-out sample)")
        return
    values = index.feature(name)
    label, _ = U.label_for(name, values) if feat != REGEX else (values > 0.5, "")
    win = min(EXCERPT, len(index))
    csum = torch.cat([torch.zeros(1), label.float().cumsum(0)])
    start = int(torch.argmax(csum[win:] - csum[:-win])) if len(index) > win else 0
    show = st.slider("How many units", 1, min(5, len(res.top)), min(3, len(res.top)), key="u_show")
    chars_s = list(index.text[start:start + win])
    st.html(uplots.unit_text_html(chars_s, values[start:start + win].tolist(), name,
                                  font_size=ctx.font_size + 2,
                                  caption=f"The feature itself on the sample, steps {start}–{start + win}"))
    for s in res.top[:show]:
        acts = index.activations(s.unit, start, start + win).tolist()
        st.html(uplots.unit_text_html(chars_s, acts, s.unit.label, font_size=ctx.font_size + 2,
                                      caption=f"{s.unit.label} (r = {s.r:+.3f}, AUC = {s.auc:.3f}) on the same "
                                              "sample excerpt; blue negative, red positive"))
        on_sidebar_text(s)


def on_sidebar_text(s: U.UnitScore, note: str = "") -> None:
    """One unit's activations as coloured sidebar text."""
    typed = tr[s.unit.tensor_name][:, s.unit.unit].tolist()[:MAX_URL_TEXT]
    st.html(uplots.unit_text_html(tr.chars[:len(typed)], typed, s.unit.label, font_size=ctx.font_size + 2,
                                  caption=f"{s.unit.label}{note} on the sidebar text"))


# --------------------------------------------------------------------------- hypothesis
def hypothesis() -> None:
    """The Hypothesis tab: the units on inside a span of the text and off around it, and their matches."""
    index = get_index(key="hyp")
    if index is None:
        return
    if T < 2:
        st.info("Type at least two characters to select a span.")
        return
    _hypothesis_defaults()
    chosen = _hypothesis_controls()
    if chosen is None:
        return
    how, a, b, auto, thr, frac = chosen
    st.session_state["u_a"], st.session_state["u_b"] = a, b
    sync(*HYPOTHESIS_KEYS)
    if b <= a:
        st.info("The span is empty: move the end slider past the start.")
        return
    try:
        hyp = U.select_units(index, tr, a, b, threshold=None if auto else thr)
    except ERRORS as err:
        st.info(str(err))
        return
    _show_hypothesis(index, hyp, a, b, auto, frac)


def _hypothesis_defaults() -> None:
    """Seed the Hypothesis tab's widgets from the URL (``units.how``, ``.find``, ``.a``, ``.b``,
    ``.auto``, ``.thr``, ``.frac``)."""
    use(*HYPOTHESIS_KEYS, T=T)


def _hypothesis_controls() -> tuple[str, int, int, bool, float, float] | None:
    """The span picker and threshold controls: (how, a, b, auto, θ, fraction), or None when the
    text to find does not occur (a message says so)."""
    a0, b0 = int(st.session_state["u_a"]), int(st.session_state["u_b"])
    a0, b0 = min(a0, T - 1), min(max(b0, a0 + 1), T)
    with controls("u-hyp"):
        how = st.radio("Select the span by", ("slider", "find"), horizontal=True, key="u_how",
                       format_func={"slider": "start / end sliders", "find": "finding a piece of text"}.get)
        if how == "slider":
            a, b = st.slider("Span [start, end) of the sidebar text (steps)", 0, T, (a0, b0), key="u_span")
        else:
            span = _find_span()
            if span is None:
                return None
            a, b = span
        c1, c2, c3 = st.columns(3)
        auto = c1.toggle("Automatic threshold", key="u_auto",
                         help="θ on the scale activation / max|activation over the sample|: the value "
                              "that the most units separate at (on inside, off around); see rnnviz.units.")
        thr = c2.slider("Threshold θ", 0.0, 1.0, step=0.01, key="u_thr", disabled=auto)
        frac = c3.slider("Matches need this fraction of the units on", 0.5, 1.0, step=0.05, key="u_frac")
    return how, a, b, auto, thr, frac


def _find_span() -> tuple[int, int] | None:
    """The span [a, b) of the first occurrence of the typed text, or None (with a message)."""
    needle = st.text_input("Text to find (its first occurrence is the span)", key="u_find",
                           max_chars=200)
    pos = tr.text.find(needle) if needle else -1
    if pos < 0:
        st.info("That text does not occur in the sidebar text (as the model reads it"
                + (", after its preprocessing" if tr.preprocessed else "") + ").")
        return None
    return pos, pos + len(needle)


def _show_hypothesis(index: U.UnitIndex, hyp: U.Hypothesis, a: int, b: int, auto: bool,
                     frac: float) -> None:
    """The span on the text, the units selected for it, and where else they switch on together."""
    st.html(uplots.span_text_html(tr.chars[:MAX_URL_TEXT], a, b, hyp.around, font_size=ctx.font_size + 2))
    if hyp.threshold is None:
        st.info("No unit is on throughout this span and off around it at any threshold ≥ 0. Try a "
                "shorter span, or one that differs more from its neighbours.")
        return
    st.write(f"**{len(hyp.units)}** unit direction(s) are on inside "
             f"{tr.text[a:b]!r} and off around it at θ = {hyp.threshold:.3f}"
             + (" (automatic)" if auto else f" (automatic would be {hyp.auto_threshold:.3f})"
                if hyp.auto_threshold is not None else "")
             + f"; {hyp.separable} separate at some θ ≥ 0.")
    if not hyp.units:
        st.info("None at this threshold: switch on the automatic threshold or move θ.")
        return
    unit_table([{"unit": s.unit.label, "on when": "high" if s.sign > 0 else "low",
                 "min inside": round(s.inside_min, 3), "max around": round(s.around_max, 3)}
                for s in hyp.units[:50]], key="u_hyp_rows")
    matches, total = U.find_matches(index, hyp, min_fraction=frac, top=25)
    st.subheader(f"Where else these units switch on together: {total:,} place(s) in the sample")
    st.html(uplots.matches_html(matches, font_size=ctx.font_size + 1))


# --------------------------------------------------------------------------- counterfactual
def counterfactual_tab() -> None:
    text = tr.text
    use("units.es", "units.ee", "units.rep", T=T, rep="x" if text[:1] != "x" else "y")
    es0 = min(int(st.session_state["u_es"]), T)
    ee0 = min(max(int(st.session_state["u_ee"]), es0), T)
    with controls("u-cf"):
        c1, c2 = st.columns([3, 1])
        es, ee = c1.slider("Characters to replace [start, end) (start = end inserts)", 0, T, (es0, ee0),
                           key="u_edit")
        rep = c2.text_input("Replace with", key="u_rep", max_chars=200,
                            help="Empty deletes the selected characters.")
    st.session_state["u_es"], st.session_state["u_ee"] = es, ee
    sync("units.es", "units.ee", "units.rep")
    try:
        plan = cost.fit("forward2", cfg, T, what="counterfactual", request_seconds=settings().request_seconds)
        cf = cached_counterfactual(ctx.ref, text[:max(plan.steps, ee)], es, ee, rep, model)
    except ERRORS as err:
        st.info(str(err))
        return
    reduced(plan)
    st.text(f"before: …{text[max(0, es - 30):es]}[{text[es:ee]}]{text[ee:ee + 30]}…\n"
            f"after:  …{text[max(0, es - 30):es]}[{rep}]{text[ee:ee + 30]}…")
    if cf.unknown_in_edit:
        st.warning(f"{cf.unknown_in_edit} inserted character(s) are not in the model's vocabulary and "
                   "are read as <unk>.")
    if cf.steps.numel() == 0:
        st.info("Nothing follows the edit: put it earlier in the text to see the network remember it.")
        return
    if rep == text[es:ee]:
        st.caption("The edit changes nothing, so every difference below is exactly 0.")
    show_chart(uplots.counterfactual_figure(cf, font_size=ctx.font_size), ctx, key="u_cf")
    cols = st.columns(len(cf.delta) + 1)
    for col, name in zip(cols, list(cf.delta) + ["kl"]):
        m = cf.memory(name, 1e-2)
        col.metric(f"‖Δ{name.split('.')[-1].upper()}‖ {name.split('.')[0]}" if name != "kl" else "KL",
                   "—" if m is None else f"{m} steps",
                   help="Steps after the edit until the difference stays below 1 % of its value just "
                        "after the edit (— : not within this text).")


# --------------------------------------------------------------------------- ablation
def ablation_tab() -> None:
    kinds = U.unit_kinds(model)
    use(*ABLATION_KEYS, L=cfg.num_layers, H=cfg.hidden_size, kinds=kinds)
    with controls("u-abl"):
        c1, c2, c3, c4, c5 = st.columns(5)
        layer = c1.selectbox("Layer", list(range(cfg.num_layers)), key="u_layer")
        kind = c2.selectbox("State", kinds, key="u_kind",
                            format_func={"h": "H (hidden)", "c": "C (memory cell)"}.get)
        unit = c3.number_input("Unit", 0, cfg.hidden_size - 1, key="u_unit")
        mode = c4.radio("Force to", ("zero", "clamp"), key="u_mode", horizontal=True)
        value = c5.number_input("Clamp value", -100.0, 100.0, step=0.1, key="u_val", disabled=mode == "zero")
    sync(*ABLATION_KEYS)
    try:
        plan = cost.fit("forward2", cfg, T, what="ablation", request_seconds=settings().request_seconds)
        ab = cached_ablation(ctx.ref, tr.text[:plan.steps], int(layer), int(unit), kind, mode,
                             float(value), model)
    except ERRORS as err:
        st.info(str(err))
        return
    reduced(plan)
    st.caption("Computed on a forward pass that forces the unit after every step; the shared model "
               "is only read.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Mean Δ surprisal", f"{ab.mean_delta:+.4f} nats/char")
    n = int(ab.kl.numel())          # T, or fewer when the cost model reduced the text
    c2.metric("Top prediction changed", f"{int(ab.argmax_changed.sum())} / {n} steps")
    c3.metric("Largest KL", f"{float(ab.kl.max()):.3g} nats")
    start, width = 0, min(200, n)
    if n > width:
        start = st.slider("Window start (step)", 0, n - width, 0, key="u_abl_start")
    show_chart(uplots.ablation_figure(ab, start, width, font_size=ctx.font_size), ctx, key="u_abl")
    worst = torch.argsort(ab.kl, descending=True)[:10].tolist()
    st.write("Steps where the prediction moved most")
    st.dataframe(uplots.ablation_rows(ab, sorted(worst)), hide_index=True, width="stretch")


# --------------------------------------------------------------------------- projection
def projection_tab() -> None:
    options = state_options()
    default = act_name(cfg.num_layers - 1, "h")
    use("units.pca", states=options, default=[default])
    with controls("u-pca"):
        names = st.multiselect("States to project (concatenated)", options, key="u_pca")
    sync("units.pca")
    if not names:
        st.info("Pick at least one state.")
        return
    try:
        dims = sum(tr[n].shape[1] for n in names if n in tr)
        cost.check_pca(T, dims, cost.op_budget("pca", request_seconds=settings().request_seconds))
        proj = run_heavy("pca", U.project_trace, tr, names, k=2, estimate=cost.pca_seconds(T, dims))
    except ERRORS as err:
        st.info(str(err))
        return
    ev = proj.explained.tolist()
    st.caption(f"PC1 and PC2 explain {100 * sum(ev):.1f}% of the variance of {', '.join(names)} over "
               f"the {T} steps (PCA by SVD of the centred trajectory).")
    show_chart(uplots.pca_figure(proj, tr.chars, font_size=ctx.font_size), ctx, key="u_pca_fig")


for k, render in enumerate((unit_finder, hypothesis, counterfactual_tab, ablation_tab, projection_tab)):
    if is_open(k):
        with tabs[k]:
            render()
play_next("units")
