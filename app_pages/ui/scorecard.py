"""The Units view's verdict panel: the trust scorecard (:func:`rnnviz.units.scorecard`) of the chosen
feature, shown before the unit finder's ranking, and the Predictions view's n-gram baseline card.

Scorecard: on a shipped checkpoint whose controls sidecar matches (``<name>.scorecard.json``,
:mod:`rnnviz.units.scorecard_cache`) the scorecard runs on the held-out scorecard slice with those
controls, ablating at most PAGE_MAX_CAUSAL units; otherwise (an upload, a regular expression, no
sidecar) it runs cold on the first COLD_CHARS characters of that slice, which keeps the untrained
controls and random ablations inside the request's deadline.

Baseline: n-gram models (:mod:`rnnviz.baseline`) fitted on the checkpoint's training split, scored
on the typed text beside the RNN, with the per-character difference RNN − 5-gram as coloured text.
"""

from __future__ import annotations

import logging

import pandas as pd
import streamlit as st

from app_pages.ui.cache import UPLOAD_PREFIX, cached_derived
from app_pages.ui.context import Context
from app_pages.ui.pin import unit_table
from app_pages.ui.later import show_when_ready
from app_pages.ui.settings import Settings, settings
from app_pages.ui.work import LIMITS, background_heavy, cached_heavy, limit_message
from rnnviz import TextError
from rnnviz import features as F
from rnnviz import units as U
from rnnviz.baseline import Baseline, BaselineError, split_baseline, training_split
from rnnviz.checkpoint import CheckpointError, list_checkpoints, load_model, resolve_checkpoint
from rnnviz.plots import units as uplots
from rnnviz.ref import ModelRef, model_ref
from rnnviz.units.names import unit_name
from rnnviz.units.scorecard_cache import PAGE_MAX_CAUSAL, controls_path, load_controls, scorecard_sample

log = logging.getLogger(__name__)

#: Characters of the held-out slice a scorecard without cached controls runs on.
COLD_CHARS = 1_000
#: The scorecard at a training timeline's step (app_pages/ui/timeline.py): the statistic against
#: two untrained controls, no ablations (a step's verdict must come in a few seconds; the shipped
#: checkpoint, the last step, keeps its full scorecard).
STEP_SCORECARD = {"controls": 2, "draws": 2, "max_causal": 0}
ERRORS = (U.UnitsError, F.FeatureError, TextError)
VERDICT_ORDER = {"causal": 0, "correlational": 1, "chance": 2}
#: A scorecard's rough size in seconds (2–15 s on the shipped checkpoints), for the heavy lane's order.
SCORECARD_SECONDS = 5.0
#: Height (pixels) of the verdict's box: its summary, caption and table (a table of 12 rows is 400 px,
#: Streamlit's default). The placeholder holds the same box, so the unit finder's bars below it do
#: not move when the verdict arrives.
VERDICT_HEIGHT = 640


def _controls(model_key: str, checkpoint_dir=None) -> dict | None:
    if model_key.startswith(UPLOAD_PREFIX):
        return None
    try:
        return load_controls(resolve_checkpoint(model_key, checkpoint_dir or settings().checkpoint_dir))
    except CheckpointError:
        return None


def _sidecar_stamp(model_key: str, checkpoint_dir) -> tuple[int, int] | None:
    """(size, mtime_ns) of a shipped checkpoint's controls sidecar: part of the scorecard's key,
    so a sidecar written later is used at once (None: an upload, or no sidecar)."""
    if model_key.startswith(UPLOAD_PREFIX):
        return None
    try:
        stat = controls_path(resolve_checkpoint(model_key, checkpoint_dir)).stat()
    except (CheckpointError, OSError):
        return None
    return stat.st_size, stat.st_mtime_ns


def compute_scorecard(model, model_key: str, digest: str, feature: str, step: int | None, checkpoint_dir,
                      corpora_dir) -> tuple[pd.DataFrame, str]:
    """(the scorecard of ``feature``, how it was computed) on the model's held-out slice; at a
    training ``step`` (a timeline's snapshot) the quick one (STEP_SCORECARD: no ablations). Runs in
    a lane (no Streamlit call): see :func:`scorecard_state`."""
    sample, source = scorecard_sample(model, corpora_dir=corpora_dir)
    if step is not None:
        df = U.scorecard(model, sample[:COLD_CHARS], [feature], **STEP_SCORECARD)
        return df, (f"{source}; first {min(len(sample), COLD_CHARS):,} characters; at training step "
                    f"{step:,}: {STEP_SCORECARD['controls']} untrained controls and no ablations, so "
                    "'causal' is not judged here")
    cache = _controls(model_key, checkpoint_dir)
    feats = (cache or {}).get("features") or {}
    warm = (cache is not None and feature in feats and cache.get("chars") == len(sample)
            and cache.get("fingerprint") == digest)
    text = sample if warm else sample[:COLD_CHARS]
    df = U.scorecard(model, text, [feature], max_causal=PAGE_MAX_CAUSAL, cache=cache if warm else None)
    how = (f"{source}; {'first ' + format(len(text), ',') + ' characters, ' if not warm else ''}"
           f"controls {'from the checkpoint’s sidecar' if warm else 'computed now'}")
    return df, how


def _call(ref: ModelRef, model_key: str, feature: str, model, step: int | None, s: Settings) -> tuple:
    """(key, arguments, kind) of the scorecard's computation, shared by the blocking and the
    background call."""
    key = (ref, model_key, feature, step, _sidecar_stamp(model_key, s.checkpoint_dir))
    return key, (model, model_key, ref.digest, feature, step, s.checkpoint_dir, s.corpora_dir), \
        ("scorecard", ref.name, step is None)


def scorecard_state(ref: ModelRef, model_key: str, feature: str, model, step: int | None = None,
                    s: Settings | None = None, keep: bool = False, estimate: float | None = None):
    """The scorecard of :func:`compute_scorecard` without waiting: Ready((df, how)), Pending (it is
    queued in the heavy lane) or Failed (rnnviz.serving.background). ``s``, ``keep`` and
    ``estimate``: for the start-up warm-up, which runs outside a script run (without an estimate,
    the last measured scorecard of this model orders the heavy lane)."""
    s = s or settings()
    key, args, kind = _call(ref, model_key, feature, model, step, s)
    return background_heavy("index", compute_scorecard, key, *args, kind=kind, expected=ERRORS, keep=keep,
                            request_seconds=s.request_seconds, estimate=estimate)


def feature_scorecard(ref: ModelRef, model_key: str, feature: str, model,
                      step: int | None = None) -> tuple[pd.DataFrame, str]:
    """The same scorecard, waited for (the dictionary features' comparison line)."""
    key, args, _ = _call(ref, model_key, feature, model, step, settings())
    return cached_heavy("index", compute_scorecard, key, *args, estimate=SCORECARD_SECONDS)


def warm_scorecards(s: Settings) -> int:
    """Queue the default scorecard (the Units view's default feature) of every shipped checkpoint
    in the heavy lane, once at start-up, so a class's first visits to Units read it from the shared
    store instead of waiting seconds for it. Returns how many were queued; a checkpoint that cannot
    be loaded is logged and skipped."""
    from app_pages.ui.params import PARAMS
    from app_pages.ui.sidebar import DEFAULT_CHECKPOINT

    feature, queued = PARAMS["units.feat"].default, 0
    for info in sorted(list_checkpoints(s.checkpoint_dir), key=lambda i: i.name != DEFAULT_CHECKPOINT):
        try:
            model = load_model(info.name, s.checkpoint_dir)
        except CheckpointError as err:
            log.info("no scorecard warmed for %s: %s", info.name, err)
            continue
        # queued after every student's heavy request (keep: it runs when the heavy lane is idle)
        scorecard_state(model_ref(model, info.name), info.name, feature, model, None, s, keep=True,
                        estimate=SCORECARD_SECONDS)
        queued += 1
    return queued


#: What a verdict table shows in the ablation columns of a unit that was not ablated.
NOT_ABLATED = "—"


def not_ablated_note(what: str = "units") -> str:
    """The caption under a verdict table: what its NOT_ABLATED cells mean."""
    return (f"{NOT_ABLATED}: not ablated. Only the {what} that beat the controls get the causal test, at most "
            f"the {PAGE_MAX_CAUSAL} strongest, so the others cannot be called causal.")


def ablation_cells(d: pd.DataFrame) -> dict[str, list[str]]:
    """The verdict table's ablation columns (Δloss on, Δloss elsewhere, z) as text, NOT_ABLATED
    where the unit was not ablated (the scorecard leaves NaN there)."""
    def cells(col: str, fmt: str) -> list[str]:
        return [NOT_ABLATED if pd.isna(v) else format(v, fmt) for v in d[col]]
    return {"Δloss on": cells("delta_loss", ".4f"), "Δloss elsewhere": cells("delta_loss_elsewhere", ".4f"),
            "z": cells("random_delta_z", ".1f")}


def verdict_rows(df: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """The table the page shows: units that beat the controls (causal first), then the best of the rest."""
    d = df.assign(order=df.verdict.map(VERDICT_ORDER)).sort_values(["order", "effect"], ascending=[True, False])
    d = d.head(top)
    return pd.DataFrame({
        "unit": [unit_name(r.layer, r.state, r.unit) for r in d.itertuples()],     # the unit's one name
        d.kind.iloc[0] if len(d) else "stat": d.stat.round(3), "control p95": d.random_init_p95.round(3),
        "p (Holm)": d.p_value.map(lambda p: f"{p:.1e}"), **ablation_cells(d), "verdict": d.verdict})


def verdict_panel(ctx: Context, feature: str, playing: bool = False) -> None:
    """The verdict for ``feature`` on the model's held-out text: a one-line summary and the table
    (``playing``: a training timeline is playing; a step's verdict waits for the pause). Computed
    in the heavy lane without holding the page: a placeholder polls until it is ready (later.py)."""
    st.subheader("Verdict: which units pass the controls")
    if ctx.train_step is not None and playing:
        st.info("The verdicts of a training step are computed when the timeline is paused.")
        return
    ref, model_key, model, step = ctx.ref, ctx.model_key, ctx.model, ctx.train_step
    show_when_ready(lambda: scorecard_state(ref, model_key, feature, model, step),
                    "Scoring units against controls (untrained models, shifted labels and ablations)",
                    lambda result: _verdicts(ctx, feature, *result), _verdict_failed, height=VERDICT_HEIGHT)


def _verdict_failed(err: BaseException) -> None:
    if isinstance(err, ERRORS):
        st.info(f"No scorecard: {err}")
    elif isinstance(err, LIMITS):
        st.info(limit_message("scorecard", err))
    else:                   # logged with its traceback by rnnviz.serving.background
        st.warning(f"The scorecard failed ({type(err).__name__}: {err}). The server's log has the details; "
                   "reload the page to try again in a moment.")


def _verdicts(ctx: Context, feature: str, df: pd.DataFrame, how: str) -> None:
    counts = df.verdict.value_counts()
    st.markdown(f"**{int(counts.get('causal', 0))} causal**, **{int(counts.get('correlational', 0))} "
                f"correlational**, {int(counts.get('chance', 0))} at chance level for "
                f"*{df.attrs['rules'][feature]}* ({how}).")
    controls = STEP_SCORECARD["controls"] if ctx.train_step is not None else 5
    if not ctx.lecture:             # lecture mode: an explanation, the teacher says it
        st.caption(f"Beats the controls: stronger than 95 % of the units of {controls} untrained models of "
                   "the same shape (control p95) and a block-permutation p below 0.05 after correction. "
                   f"Causal: besides, silencing it (mean-ablation, at most {PAGE_MAX_CAUSAL} units tried) "
                   "raises the loss where the feature is on more than elsewhere, by z ≥ 2 against random "
                   "units. The unit finder below ranks by correlation alone.")
    rows = verdict_rows(df)
    unit_table(rows, key="u_verdict_rows")            # a click on a row pins its unit
    if (rows["Δloss on"] == NOT_ABLATED).any():
        st.caption(not_ablated_note())


@st.cache_resource(max_entries=4, show_spinner="Fitting n-gram models on the training split (once per corpus)…")
def fitted_baseline(split: tuple) -> Baseline:
    """The n-gram baseline of a training split (rnnviz.baseline.split_baseline), shared by every
    session and by every model trained on that split (the shipped timemachine models share one)."""
    return split_baseline(split, corpora_dir=settings().corpora_dir)


def baseline_card(ctx: Context) -> None:
    """Held-out style nats/char of n-grams n = 1 … 5 and the RNN on the typed text, and the
    per-character RNN − 5-gram surprisal as coloured text."""
    tr = ctx.trace
    st.subheader("Baseline: what the last few characters alone predict")
    if tr is None or len(tr) < 2:
        st.info("Type at least two characters to compare the RNN with n-gram models.")
        return
    try:
        base = fitted_baseline(training_split(ctx.model))
    except BaselineError as err:
        st.info(f"No n-gram baseline for this model: {err}")
        return
    ngram, rnn, html = cached_derived(f"ngram:{base.source}:{ctx.font_size}", ctx.ref, tr,
                                      lambda: _baseline_scores(base, tr, ctx.font_size))
    rows = [{"model": f"{n}-gram", "nats/char on this text": v} for n, v in ngram.items()]
    rows.append({"model": f"RNN ({ctx.model.config.cell})", "nats/char on this text": rnn})
    st.caption(f"Interpolated Kneser–Ney n-grams fitted on {base.source}; every model predicts "
               f"characters 2 … {len(tr)} of the text. Lower is better.")
    st.dataframe(pd.DataFrame(rows).round(3), hide_index=True)
    st.html(html)


def _baseline_scores(base: Baseline, tr, font_size: int) -> tuple[dict[int, float], float, str]:
    """The n-gram card's numbers for one trace (rnnviz.baseline): n → the n-gram's mean nats/char
    on the text, the RNN's, and the text coloured by the RNN's surprisal minus the 5-gram's (HTML)."""
    rnn = tr.surprisal.double().numpy()
    five = base.models[max(base.models)].surprisal(tr.text)
    html = uplots.unit_text_html(tr.chars[1:], (rnn - five).tolist(), "RNN − 5-gram surprisal (nats)",
                                 font_size=font_size + 2,
                                 caption="Each character coloured by the RNN's surprisal minus the 5-gram's: "
                                         "blue where the RNN predicts it better (the recurrence pays), red "
                                         "where the 5-gram does.")
    return {n: float(m.surprisal(tr.text).mean()) for n, m in base.models.items()}, float(rnn.mean()), html


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def shipped_verdicts(ref: ModelRef, model_key: str) -> dict | None:
    """Feature → {unit name: verdict} from a shipped checkpoint's sidecar made from these weights
    (None for uploads, a missing sidecar, or one made from other weights)."""
    cache = _controls(model_key)
    if not cache or cache.get("fingerprint") != ref.digest or not isinstance(cache.get("verdicts"), dict):
        return None
    return cache["verdicts"]


def checked_names(ctx: Context, tensor_name: str, named: dict[int, str]) -> tuple[dict[int, str], str]:
    """The Hidden states view's named units (unit → feature label, rnnviz.units.names) kept only
    where that (unit, feature) beats the controls in the checkpoint's scorecard, the verdict added
    to the label; and the caption's sentence saying so (or that they were not checked)."""
    verdicts = shipped_verdicts(ctx.ref, ctx.model_key)
    if verdicts is None:
        return named, (" Not checked against controls (this model has no scorecard): the Units view's "
                       "verdict says which to trust.")
    kept = {}
    for j, label in named.items():
        feature = label.removesuffix(" (low)").replace(" ", "_")
        verdict = verdicts.get(feature, {}).get(f"{tensor_name}[{j}]")
        if verdict:
            kept[j] = f"{label} · {verdict}"
    return kept, (" Named only where the scorecard on held-out text calls the unit causal or correlational "
                  "for that feature (the Units view's verdict).")
