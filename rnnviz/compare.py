"""Pure data preparation for comparing several checkpoints on one text (no Streamlit, no Plotly).

Models do not always see the same text. A model trained with d2l preprocessing (``"d2l"``: every
run of non-letters becomes one space, then lowercase) reads a *cleaned* text, with its own length.
This module keeps every number honest by aligning each model's predictions back onto the
**original** text, position by position:

* letters map one-to-one (an upper-case letter is read, and predicted, lower-cased: *changed*);
* a run of non-letters maps to the single space the model reads: the first character of the run
  carries the surprisal of predicting that space (*changed* unless it is a space), the rest of the
  run was never seen by the model (*merged*, no number);
* a character outside a model's vocabulary is read as ``<unk>`` and its "surprisal" is that of
  predicting ``<unk>`` (*unknown*): reported, but not comparable.

Summary numbers are given twice: on the model's own text (what it saw) and on the *common*
positions — those where every compared model predicted exactly the original character.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .model import CharRNN
from .trace import Trace
from .trace import trace as run_trace
from .vocab import preprocess
from .names import act_name

#: Flags of an aligned position (per model, per original character).
OK, FIRST, MERGED, CHANGED, UNKNOWN = 0, 1, 2, 3, 4
FLAG_NAMES = {OK: "predicted", FIRST: "first character (nothing to predict from)",
              MERGED: "not seen (merged by d2l cleaning)", CHANGED: "seen changed by preprocessing",
              UNKNOWN: "outside the vocabulary (<unk>)"}
MAX_MODELS = 3
_NON_LETTERS = re.compile(r"[^A-Za-z]+")


@dataclass(frozen=True)
class Alignment:
    """How a model's preprocessing maps the original text onto the text it reads."""

    seen: str                  #: the text the model reads
    index: np.ndarray          #: (T_orig,) original position → position in ``seen``
    first: np.ndarray          #: (T_orig,) bool: this original position is the first mapped to index[i]


def align(text: str, preprocessing: str) -> Alignment:
    """Map every original character to the character the model reads (see the module docstring)."""
    if preprocessing == "none":
        n = len(text)
        return Alignment(text, np.arange(n), np.ones(n, dtype=bool))
    if preprocessing != "d2l":
        raise ValueError(f"unknown preprocessing {preprocessing!r}")
    index = np.empty(len(text), dtype=np.int64)
    first = np.zeros(len(text), dtype=bool)
    out: list[str] = []
    pos = 0
    for m in _NON_LETTERS.finditer(text):
        for i in range(pos, m.start()):          # letters, one to one
            index[i], first[i] = len(out), True
            out.append(text[i].lower())
        index[m.start():m.end()] = len(out)     # the whole run → one space
        first[m.start()] = True
        out.append(" ")
        pos = m.end()
    for i in range(pos, len(text)):
        index[i], first[i] = len(out), True
        out.append(text[i].lower())
    seen = "".join(out)
    assert seen == preprocess(text, "d2l"), "alignment out of sync with d2l_clean"
    return Alignment(seen, index, first)


@dataclass
class ModelRun:
    """One model's view of the text."""

    name: str
    describe: dict                     #: model.describe()
    provenance: dict
    seen_text: str                     #: what the model read
    chars: list[str]                   #: one per step of the model's own text
    states: dict[str, np.ndarray]      #: "layer{l}.h" (and LSTM "layer{l}.c") → (T_seen, h)
    surprisal_own: np.ndarray          #: (T_seen − 1,) nats, on the model's own text
    summary: dict                      #: Trace.summary()
    unknown_positions: tuple[int, ...]  #: in the model's own text
    gradient_norms: np.ndarray | None = None  #: optional, filled by the page from rnnviz.gradients


@dataclass
class Comparison:
    text: str                          #: the original text
    runs: list[ModelRun]
    surprisal: np.ndarray              #: (M, T_orig) nats aligned on the original text, NaN = none
    flags: np.ndarray                  #: (M, T_orig) int, see FLAG_NAMES
    seen_chars: list[list[str]]        #: (M, T_orig) the character each model read at that position
    common: np.ndarray                 #: (T_orig,) bool: every model predicted the original char
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.runs]


def _flags(text: str, al, unknown_positions: list[int]) -> np.ndarray:
    """Per original character (T,): OK, CHANGED, UNKNOWN, MERGED or FIRST (see FLAG_NAMES)."""
    T = len(text)
    unknown = np.zeros(len(al.seen), dtype=bool)
    unknown[list(unknown_positions)] = True
    j = al.index
    orig = np.fromiter(map(ord, text), dtype=np.int64, count=T)      # any str, lone surrogates too
    seen_arr = np.fromiter(map(ord, al.seen), dtype=np.int64, count=len(al.seen))
    f = np.full(T, OK, dtype=np.int8)
    f[seen_arr[j] != orig] = CHANGED
    f[unknown[j]] = UNKNOWN
    f[~al.first] = MERGED
    f[j == 0] = FIRST
    return f


def _states(model: CharRNN, tr: Trace) -> dict[str, np.ndarray]:
    """Every layer's H_t (and C_t) of a trace, as float32 arrays (T', h)."""
    names = (act_name(layer, key) for layer in range(model.config.num_layers) for key in ("h", "c"))
    return {n: tr[n].float().numpy().copy() for n in names if n in tr}


def _run_one(text: str, name: str, model: CharRNN, tr: Trace | None):
    """One model: its run, surprisal per original character (T,), flags (T,), chars seen, and the
    alignment."""
    if tr is None or tr.original_text != text:
        tr = run_trace(model, text)
    al = align(text, model.config.preprocessing)
    if al.seen != tr.text:
        raise AssertionError(f"{name}: trace text does not match its preprocessing")
    own = tr.surprisal.double().numpy()
    f = _flags(text, al, tr.unknown_positions)
    s = np.full(len(text), np.nan)
    has = al.first & (al.index >= 1)
    s[has] = own[al.index[has] - 1]
    run = ModelRun(name, model.describe(), dict(getattr(model, "provenance", {}) or {}),
                   tr.text, list(tr.chars), _states(model, tr), own, tr.summary(), tr.unknown_positions)
    return run, s, f, [al.seen[x] for x in al.index], al


def _notes(text: str, runs: list[ModelRun], d2l: list[str], d2l_stats: tuple[int, int, int],
           common: np.ndarray) -> list[str]:
    """The plain-language notes under the comparison (preprocessing, <unk>, different texts)."""
    notes = [f"{r.name}: {len(r.unknown_positions)} character(s) are outside its vocabulary and read "
             "as <unk>; their surprisal is that of predicting <unk>." for r in runs if r.unknown_positions]
    if d2l:
        n_seen, chg, merged = d2l_stats
        one = len(d2l) == 1
        notes.insert(0, f"{' and '.join(d2l)} {'was' if one else 'were'} trained on d2l-cleaned "
                        f"text, so {'it reads' if one else 'each reads'} {n_seen:,} characters instead of "
                        f"{len(text):,} (lower case, each run of non-letters → one space): {chg} position(s) "
                        f"are read changed and {merged} are merged away (no number).")
    if len(runs) > 1 and len({r.seen_text for r in runs}) > 1:
        notes.append("The models read different texts, so their own cross-entropies are not directly "
                     "comparable; the 'common positions' columns compare them on the "
                     f"{int(common.sum()):,} positions where every model predicted the same character. "
                     "Even there a model with a smaller vocabulary chooses among fewer symbols.")
    return notes


def compare(text: str, models: dict[str, CharRNN], traces: dict[str, Trace] | None = None) -> Comparison:
    """Run ``text`` through up to three models and align everything on the original text.

    models: name → model (used read-only). traces: optional precomputed ``rnnviz.trace(model, text)``
    per name (e.g. from a cache); they must be traces of this exact ``text``.
    Raises ValueError for no models, more than MAX_MODELS, or an empty text.
    """
    if not models:
        raise ValueError("Pick at least one checkpoint to compare.")
    if len(models) > MAX_MODELS:
        raise ValueError(f"At most {MAX_MODELS} checkpoints can be compared at once.")
    if not isinstance(text, str) or not text:
        raise ValueError("The text is empty: type at least one character.")
    traces = dict(traces or {})
    M, T = len(models), len(text)
    surprisal = np.full((M, T), np.nan)
    flags = np.zeros((M, T), dtype=np.int8)
    seen_chars: list[list[str]] = []
    runs: list[ModelRun] = []
    d2l_names: list[str] = []
    d2l_stats = (0, 0, 0)
    for k, (name, model) in enumerate(models.items()):
        run, surprisal[k], flags[k], seen, al = _run_one(text, name, model, traces.get(name))
        runs.append(run)
        seen_chars.append(seen)
        if model.config.preprocessing == "d2l":      # the same figures for every d2l model
            d2l_names.append(name)
            d2l_stats = (len(al.seen), int((flags[k] == CHANGED).sum()), int((flags[k] == MERGED).sum()))
    common = (flags == OK).all(axis=0)
    notes = _notes(text, runs, d2l_names, d2l_stats, common)
    table = _table(runs, surprisal, common)
    return Comparison(text, runs, surprisal, flags, seen_chars, common, table, notes)


def _table(runs: list[ModelRun], surprisal: np.ndarray, common: np.ndarray) -> pd.DataFrame:
    rows = []
    n_common = int(common.sum())
    for k, r in enumerate(runs):
        d, s = r.describe, r.summary
        c = float(np.mean(surprisal[k, common])) if n_common else math.nan
        val = r.provenance.get("val_loss")
        # The measurements first, the model's description after: on a projector or a narrow
        # window the table scrolls sideways, and perplexity must not be what scrolls away (#28).
        rows.append({
            "checkpoint": r.name, "cell": d["cell"], "perplexity": s["perplexity"],
            "cross-entropy (nats/char)": s["cross_entropy"], "bits/char": s["bits_per_char"],
            "bits/char (common)": c / math.log(2) if n_common else math.nan,
            "layers": d["layers"], "H": d["hidden_size"],
            "|V|": d["vocab_size"], "parameters": d["parameters"], "preprocessing": d["preprocessing"],
            "chars read": int(s["characters"]), "unknown": int(s["unknown"]),
            "common positions": n_common,
            "val loss (training)": float(val) if isinstance(val, (int, float)) else math.nan,
        })
    return pd.DataFrame(rows)


def flag_counts(cmp: Comparison) -> pd.DataFrame:
    """Per model, how many original positions fall under each flag (for an honesty note)."""
    return pd.DataFrame({FLAG_NAMES[f]: (cmp.flags == f).sum(axis=1) for f in FLAG_NAMES},
                        index=cmp.names)


def default_selection(available: list[str], current: str | None = None) -> list[str]:
    """The timemachine rnn/gru/lstm trio where present; else the current model plus the next ones."""
    trio = [n for n in ("timemachine-rnn", "timemachine-gru", "timemachine-lstm") if n in available]
    if len(trio) >= 2:
        return trio
    picked = [current] if current in available else []
    for n in available:
        if n not in picked and len(picked) < MAX_MODELS:
            picked.append(n)
    return picked[:MAX_MODELS]


#: Gradient curves use at most the last this-many characters of each model's text (cost is
#: O(T·h²) per model, ~0.1–0.3 s each at h = 256–512 here; the shipped models' curves shrink 100×
#: within 15–40 steps, so 400 steps back show the whole decay).
GRAD_MAX_CHARS = 400


@dataclass
class GradientCurve:
    """‖∂ℓ/∂H_t‖ of the top layer for the loss ℓ at the last step, against distance back from it."""

    name: str
    distance: np.ndarray       #: (n,) steps back from the loss step
    norms: np.ndarray          #: (n,) float64
    factor: float              #: fitted per-step factor (< 1: vanishing), nan if not fittable
    steps_to_1pct: float       #: steps after which the fitted curve has shrunk 100×
    chars_used: int            #: how many characters of the model's text the curve used
    zeros: int                 #: exact zeros (underflow) in the curve


def gradient_curves(cmp: Comparison, models: dict[str, CharRNN],
                    max_chars: int = GRAD_MAX_CHARS) -> list[GradientCurve]:
    """One gradient-norm curve per model, from the colleague's ``rnnviz.gradients.norm_curve``.

    Each model gets the last ``max_chars`` characters of the text *it* reads (already preprocessed;
    the d2l cleaning is idempotent so the curve sees the same characters). Raises ImportError when
    rnnviz.gradients is not available, GradientError (a ValueError) for a text under 2 characters.
    """
    from . import gradients as G  # noqa: PLC0415 — optional dependency on a sibling module

    out = []
    for run in cmp.runs:
        text = run.seen_text[-max_chars:]
        curve = G.norm_curve(models[run.name], text, loss="last")
        top = curve.top
        fit = curve.fits.get(top)
        norms = curve.h_norms[-1].double().numpy()
        out.append(GradientCurve(run.name, curve.distance.numpy(), norms,
                                 float(fit.factor) if fit else math.nan,
                                 float(fit.steps_to_shrink(0.01)) if fit else math.nan,
                                 len(text), int(curve.zeros.get(top, 0))))
    return out


@dataclass(frozen=True)
class UnitSeries:
    """One model's trace of one unit (the pinned unit, followed into Compare): ``values`` over the
    model's own text (``chars``), or None and a ``note`` saying why this model has no such unit."""

    name: str
    values: np.ndarray | None
    chars: list[str]
    note: str = ""


def unit_series(cmp: Comparison, layer: int, kind: str, unit: int) -> list[UnitSeries]:
    """The unit (layer, state ``kind`` "h"/"c", index ``unit``) in every compared model, where that
    model has it: same layer, same state, same index (a unit index names a different unit in a
    differently trained model; the page says so)."""
    out = []
    for run in cmp.runs:
        layers, H = run.describe["layers"], run.states.get(act_name(layer, kind))
        if layer >= layers:
            note = f"has {layers} layer{'s' if layers > 1 else ''} (no layer {layer})"
        elif H is None:
            note = f"has no {kind.upper()}_t (a {run.describe['cell']})"
        elif unit >= H.shape[1]:
            note = f"has {H.shape[1]} units per layer (no index {unit})"
        else:
            out.append(UnitSeries(run.name, H[:, unit].copy(), list(run.chars)))
            continue
        out.append(UnitSeries(run.name, None, list(run.chars), note))
    return out


def feature_series(cmp: Comparison, layer: int, state: str, index: int, saes: dict) -> list[UnitSeries]:
    """A dictionary feature (of the SAE on ``layer{layer}.{state}``, index ``index``) in every
    compared model that has such an SAE: ``saes`` maps a run's name to that model's SAE (or None).
    Each model's own SAE: a feature index names unrelated directions in SAEs trained apart."""
    from .units.basis import feature_name
    from .units.dictionary import feature_values

    out = []
    for run in cmp.runs:
        sae = saes.get(run.name)
        if sae is None or act_name(layer, state) not in run.states:
            note = f"has no sparse autoencoder on {act_name(layer, state)}"
        elif index >= sae.n_features:
            note = f"has {sae.n_features} features (no {feature_name(layer, state, index)})"
        else:
            vals = feature_values(sae, {act_name(layer, state): run.states[act_name(layer, state)]},
                                  layer, state, index)
            out.append(UnitSeries(run.name, vals.double().numpy(), list(run.chars)))
            continue
        out.append(UnitSeries(run.name, None, list(run.chars), note))
    return out
