"""Interpretable units: unit finder, hypothesis → match, counterfactual edits, ablation, projection.

Everything here is a pure function of a model (read only, never mutated) and some text. Shapes:
T steps of a text, N steps of the corpus sample, U units, h hidden size, L layers, |V| vocabulary.

Units
    Every hidden unit of every layer: ``layer{l}.h[j]`` (H_t) and, for the LSTM, ``layer{l}.c[j]``
    (the memory cell C_t). :func:`unit_refs` lists them in a fixed order (layer, then h before c,
    then index); the columns of every (·, U) matrix below follow that order.

Corpus sample (:func:`corpus_sample`)
    The checkpoint's provenance names its training corpus (``timemachine``, ``tinyshakespeare``,
    ``python-stdlib``; loaded by :mod:`rnnviz.corpora`, never copied into the repository). The
    sample is its **last** :data:`SAMPLE_CHARS` (20,000) characters, started at the first line
    boundary inside that window, after the model's preprocessing. When the provenance records
    ``val_fraction`` (rnnviz.train holds out the last fraction of the preprocessed corpus), the
    sample is further kept inside that held-out part (:func:`training_sample`), so the units are
    measured on text the model did not train on. A user may give any text instead. The index further caps the sample so that N·U ≤ :data:`MAX_INDEX_ELEMENTS`
    (memory: two float32 (N, U) matrices).

Per-checkpoint index (:class:`UnitIndex`, built once by :func:`build_index`)
    The sample is traced once. Kept: per-unit mean μ and standard deviation σ (population), the
    standardised activations Z = (A − μ)/σ (0 for a constant unit), and the per-unit average ranks
    R of A (1…N, ties share their mean rank). A feature query is then two matrix-vector products:

    * Pearson r_u = (1/N) Σ_t z(f)_t Z_tu, with z(f) the standardised feature. Exactly Pearson's r.
    * AUC_u of the threshold classifier "activation ≥ θ ⇒ positive", swept over all θ, equals the
      Mann–Whitney statistic: AUC_u = (Σ_{t positive} R_tu − n₊(n₊+1)/2) / (n₊ n₋), i.e.
      P(a_pos > a_neg) + ½ P(a_pos = a_neg). AUC < 0.5 means the unit is *low* on the feature;
      the ranking uses |AUC − 0.5| (or |r|), the tables show the signed values.
    * Positive label for the AUC: binary features are positive where f > 0.5; count features where
      f > median(f) over the sample, or f > 0 when the median is 0 (e.g. "inside any bracket").
      :attr:`FinderResult.label_rule` says which rule was used.

Hypothesis → match (LSTMVis-style, :func:`select_units`, :func:`find_matches`)
    A selected span [a, b) of the typed text. Each unit's activations are put on a common scale
    by its largest magnitude over the corpus sample, x = a / max_sample|a| (so 0 stays 0: "off" for
    a ReLU, "neutral" for tanh-like units, as in LSTMVis, which thresholds raw values), and each unit
    is considered in both directions (s = +1: on = high, s = −1: on = low). "Around" is the w characters before a and after b,
    w = clip(b − a, 2, 10) unless given. A unit direction is selected at threshold θ when
    min_inside(s·x) ≥ θ > max_around(s·x): on at every step of the span, off at every step around.
    **Automatic θ:** the value, over θ ≥ 0, that the largest number of unit directions' separating
    intervals (max_around, min_inside] contain; among equally good values the largest; then moved to
    the middle of the common interval of the units it selects (the widest margin). The user may
    override θ. Matches are maximal runs of the corpus sample where at least ``min_fraction`` (default
    all) of the selected unit directions are on (s·x ≥ θ); they are ranked by the mean fraction on,
    then by how close their length is to the span's, and shown with context.

Counterfactual (:func:`counterfactual`)
    The text (after the model's preprocessing) with ``text[start:end]`` replaced. Both are traced
    from the zero state. Before ``start`` nothing differs. After the edit the two texts share the
    suffix ``text[end:]``, which sits at original position end + j and edited position
    start + len(replacement) + j. Step j of the result pairs original t = end − 1 + j with edited
    t' = start + len(replacement) − 1 + j: j = 0 is the state just after the edited region was read
    (dropped when that region is empty at the very start of the text), j ≥ 1 after both have read
    the same j suffix characters. This alignment also covers length-changing edits (insertions,
    deletions). Returned: ‖H_t − H'_t‖₂ per layer (and ‖C_t − C'_t‖₂ for the LSTM), and
    KL(P_t ‖ P'_t) in nats of the next-character distributions.

Ablation (:func:`ablate`)
    One unit forced to a value (0 for "zero", any number for "clamp") after every step of its layer:
    for ``h``, H_t[j] := v (what the next step, the layer above and the output read); for the LSTM's
    ``c``, C_t[j] := v before H_t = O_t ⊙ tanh(C_t). Computed by an explicit step loop over that
    layer that reads the shared model's parameters and writes only its own tensors (layers below run
    unchanged, layers above run fused on the changed inputs). The baseline goes through the very same
    code path with no intervention, so every difference is due to the intervention.

Projection (:func:`pca`)
    PCA of a (T, h) state trajectory by ``torch.linalg.svd`` of the centred data (float64):
    coordinates X_c V_k, explained-variance ratios S_k² / Σ S², each component's sign fixed so its
    largest-magnitude loading is positive.

``python -m tools.units_report`` (run from the repository root) measures every shipped checkpoint
(docs/UNITS.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .. import features as F
from ..cache import ByteLRU
from ..threads import one_thread
from ..model import CharRNN
from ..trace import MAX_TRACE_CHARS, TextError, Trace, trace
from ..vocab import preprocess

#: Characters of corpus sample indexed per checkpoint (the last ones of the corpus).
SAMPLE_CHARS = 20_000
#: Cap on N·U for one index: each of its two (N, U) float32 matrices stays ≤ 64 MiB.
MAX_INDEX_ELEMENTS = 16_000_000
#: The module-level index cache (:func:`get_index`, shared by the page's sessions): at most this many
#: bytes (a 20,000-character index is ~70 MB for 256 units, ~120 MB for 384) and this many entries.
INDEX_CACHE_BYTES = 768 * 2**20
INDEX_CACHE_ENTRIES = 8
#: How many feature vectors one index keeps (LRU).
FEATURE_CACHE_SIZE = 32
#: Ranks are computed this many columns at a time (bounds the sort's temporary memory).
_CHUNK = 128


class UnitsError(ValueError):
    """A unit query cannot be answered (bad span, constant feature, …); the message says why."""


# =========================================================================== units
@dataclass(frozen=True, order=True)
class UnitRef:
    """One hidden unit: ``layer``, ``kind`` ("h" or "c") and index ``unit``."""

    layer: int
    kind: str
    unit: int

    @property
    def name(self) -> str:
        return f"layer{self.layer}.{self.kind}[{self.unit}]"

    @property
    def tensor_name(self) -> str:
        """The trace name of the (T, h) tensor holding this unit, e.g. ``layer0.c``."""
        return f"layer{self.layer}.{self.kind}"

    @property
    def label(self) -> str:
        return f"L{self.layer} {self.kind}[{self.unit}]"


def unit_kinds(model: CharRNN) -> tuple[str, ...]:
    return ("h", "c") if model.config.cell == "lstm" else ("h",)


def unit_refs(model: CharRNN) -> list[UnitRef]:
    """Every unit of the model, in column order: per layer, h[0…h-1] then (LSTM) c[0…h-1]."""
    H = model.config.hidden_size
    return [UnitRef(layer, kind, j) for layer in range(model.config.num_layers)
            for kind in unit_kinds(model) for j in range(H)]


def activation_matrix(tr: Trace, units: list[UnitRef] | None = None) -> Tensor:
    """(T, U) activations of ``units`` (default: all h and c of every layer, in column order)."""
    if units is None:
        kinds = ("h", "c") if tr.cell == "lstm" else ("h",)
        return torch.cat([tr[f"layer{l}.{k}"] for l in range(tr.num_layers) for k in kinds], dim=1)
    return torch.stack([tr[u.tensor_name][:, u.unit] for u in units], dim=1)


def model_fingerprint(model: CharRNN) -> str:
    """A short sha256 of the config and every parameter's bytes (identifies a checkpoint's weights)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# =========================================================================== corpus sample
def _load_corpus_text(name: str, python_max_chars: int | None = None) -> tuple[str, str]:
    """(full text, where it came from) for a corpus name from provenance. Raises UnitsError."""
    stem = name[:-4] if name.endswith(".txt") else name
    try:
        from .. import corpora  # a colleague's module; a small local loader stands in when absent
    except ImportError:
        corpora = None
    if corpora is not None:
        try:
            c = (corpora.load_corpus(stem, python_max_chars=python_max_chars) if python_max_chars
                 else corpora.load_corpus(stem))
        except (OSError, ValueError) as err:
            raise UnitsError(f"The training corpus {name!r} is not available: {err}") from None
        return c.text, c.source
    path = Path(__file__).resolve().parents[3] / "shared" / "corpora" / f"{stem}.txt"
    if not path.is_file():
        raise UnitsError(f"The training corpus {name!r} is not available (looked for {path}).")
    return path.read_text(encoding="utf-8"), str(path)


def training_sample(model: CharRNN, max_chars: int = SAMPLE_CHARS) -> tuple[str, str]:
    """The model's own held-out text where its provenance says how it was split.

    With ``provenance["val_fraction"]`` = v (rnnviz.train validates on the last v of the
    *preprocessed* corpus), the sample is the last ``max_chars`` characters of that validation part
    (from its first line start when it has newlines); otherwise :func:`corpus_sample`. The text is
    returned already preprocessed. Raises UnitsError when the corpus is unknown or missing.
    """
    prov = getattr(model, "provenance", None) or {}
    name = prov.get("corpus")
    if not name or not isinstance(name, str):
        raise UnitsError("The checkpoint does not name its training corpus; provide a text instead.")
    vf = prov.get("val_fraction")
    if not isinstance(vf, (int, float)) or not 0 < vf < 1:
        text, desc = corpus_sample(name, max_chars)
        return preprocess(text, model.config.preprocessing), desc
    tc = prov.get("train_config") if isinstance(prov.get("train_config"), dict) else {}
    pmax = tc.get("python_max_chars") if isinstance(tc.get("python_max_chars"), int) else None
    full, _ = _load_corpus_text(name, pmax)
    prepared = preprocess(full, model.config.preprocessing)
    want = prov.get("corpus_sha256")
    same = not isinstance(want, str) or want == hashlib.sha256(full.encode("utf-8")).hexdigest()
    val_start = int(len(prepared) * (1 - vf))
    start = max(val_start, len(prepared) - max_chars)
    if start > val_start:
        nl = prepared.find("\n", start, start + 1000)
        if nl != -1 and nl + 1 < len(prepared):
            start = nl + 1
    sample = prepared[start:]
    return sample, (f"{name}: last {len(sample):,} characters of the held-out validation part "
                    f"(last {vf:g} of the {model.config.preprocessing}-preprocessed corpus, "
                    f"{len(prepared) - val_start:,} characters)"
                    + ("" if same else "; NOTE: this corpus differs from the training one "
                       "(sha256 mismatch), so the split is approximate"))


def corpus_sample(name: str, max_chars: int = SAMPLE_CHARS) -> tuple[str, str]:
    """The last ``max_chars`` characters of corpus ``name``, from the first line start in them.

    Returns (sample text, a one-line description). Raises UnitsError when the corpus is missing.
    """
    full, source = _load_corpus_text(name)
    if max_chars <= 0:
        raise UnitsError("The sample size must be positive.")
    start = max(0, len(full) - max_chars)
    if start > 0:
        nl = full.find("\n", start, start + 1000)
        if nl != -1 and nl + 1 < len(full):
            start = nl + 1
    sample = full[start:]
    return sample, f"{name}: last {len(sample):,} of {len(full):,} characters (from {start:,})"


# =========================================================================== index
def average_ranks(a: Tensor) -> Tensor:
    """Column-wise 1-based ranks of ``a`` (N, U), ties sharing their mean rank; float32 (N, U).

    Works on contiguous rows of ``a.T``, ``_CHUNK`` units at a time (bounded temporary memory).
    """
    N, U = a.shape
    out = torch.empty((U, N), dtype=torch.float32)
    pos = torch.arange(N, dtype=torch.int64)
    place = (pos + 1).to(torch.float32)
    for c0 in range(0, U, _CHUNK):
        block = a[:, c0:c0 + _CHUNK].T.contiguous()                  # (k, N)
        k = block.shape[0]
        vals, idx = torch.sort(block, dim=1)
        avg = place.expand(k, N).clone()                              # no ties: rank = place
        tied = (vals[:, 1:] == vals[:, :-1]).any(1)
        if bool(tied.any()):                     # only units with ties need the group means
            rows = torch.nonzero(tied).squeeze(1)
            v = vals[rows]
            m = rows.numel()
            new = torch.ones((m, N), dtype=torch.bool)
            new[:, 1:] = v[:, 1:] != v[:, :-1]
            last = torch.ones((m, N), dtype=torch.bool)
            last[:, :-1] = new[:, 1:]
            p = pos.expand(m, N)
            first_of_group = torch.cummax(torch.where(new, p, torch.zeros_like(p)), dim=1).values
            last_rev = torch.where(last, p, torch.full_like(p, N)).flip(1)
            last_of_group = torch.cummin(last_rev, dim=1).values.flip(1)
            avg[rows] = ((first_of_group + last_of_group + 2).to(torch.float64) / 2.0).float()
        out[c0:c0 + k].scatter_(1, idx, avg)
    return out.T.contiguous()


@dataclass
class UnitIndex:
    """Per-checkpoint precomputation over a corpus sample (see the module docstring).

    text: the sample as traced (N characters); units: U unit refs; mean, std, scale: (U,) float64
    (scale = max |activation|, 1 for an all-zero unit); z: (N, U) float32 standardised
    activations; ranks: (N, U) float32 average ranks.
    """

    key: str
    source: str
    text: str
    units: list[UnitRef]
    mean: Tensor
    std: Tensor
    z: Tensor
    ranks: Tensor
    scale: Tensor
    cell: str
    build_seconds: float = 0.0
    _features: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __len__(self) -> int:
        return len(self.text)

    @property
    def num_units(self) -> int:
        return len(self.units)

    def column(self, unit: UnitRef) -> int:
        return self.units.index(unit)

    def activations(self, unit: UnitRef, start: int = 0, end: int | None = None) -> Tensor:
        """Raw activations of one unit over sample[start:end] (recovered as μ + σ·z), float32."""
        j = self.column(unit)
        return (self.z[start:end, j].double() * self.std[j] + self.mean[j]).float()

    def scaled(self, acts: Tensor, cols: Tensor | None = None) -> Tensor:
        """Raw activations (T, U) (or (T, k) of columns ``cols``) divided by the sample's
        max |activation| of each unit: the hypothesis scale (float64)."""
        scale = self.scale if cols is None else self.scale[cols]
        return acts.double() / scale

    def raw(self, cols: Tensor) -> Tensor:
        """Raw sample activations (N, k) of columns ``cols``, recovered as μ + σ·z (float64)."""
        return self.z[:, cols].double() * self.std[cols] + self.mean[cols]

    def feature(self, name_or_regex: str) -> Tensor:
        """A feature over the sample (``rnnviz.features`` name or ``regex:<pattern>``), cached."""
        if name_or_regex in self._features:
            self._features.move_to_end(name_or_regex)
            return self._features[name_or_regex]
        values = F.feature_values(name_or_regex, self.text)
        self._features[name_or_regex] = values
        while len(self._features) > FEATURE_CACHE_SIZE:
            self._features.popitem(last=False)
        return values


def index_capacity(model: CharRNN, max_chars: int = SAMPLE_CHARS) -> int:
    """How many sample characters an index of ``model`` keeps (see MAX_INDEX_ELEMENTS)."""
    U = len(unit_refs(model))
    return max(1, min(max_chars, MAX_INDEX_ELEMENTS // U, MAX_TRACE_CHARS))


@torch.inference_mode()
def build_index(model: CharRNN, text: str, *, key: str = "", source: str = "",
                max_chars: int = SAMPLE_CHARS) -> UnitIndex:
    """Trace ``text`` (after the model's preprocessing, cut to :func:`index_capacity`) once and
    precompute z-scores and ranks of every unit, and every built-in feature of the sample.
    Raises UnitsError for an empty text."""
    t0 = time.perf_counter()
    prepared = preprocess(text, model.config.preprocessing)[:index_capacity(model, max_chars)]
    if len(prepared) < 2:
        raise UnitsError("The sample text needs at least two characters.")
    with one_thread():
        tr = trace(model, prepared, preprocess_text=False, gates=model.config.cell == "lstm")
    units = unit_refs(model)
    acts = activation_matrix(tr)
    del tr
    a64 = acts.double()
    mean = a64.mean(0)
    std = a64.std(0, unbiased=False)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    z = torch.where(std > 0, (a64 - mean) / safe, torch.zeros_like(a64)).to(torch.float32)
    del a64
    ranks = average_ranks(acts)
    scale = acts.abs().amax(0).double()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    index = UnitIndex(key or model_fingerprint(model), source or "text", prepared, units, mean, std,
                      z, ranks, scale, model.config.cell)
    for name, values in F.features(prepared).items():   # built-in features: precomputed too
        index._features[name] = values
    index.build_seconds = time.perf_counter() - t0
    return index


#: Every index built through :func:`get_index`, shared read-only (thread-safe; each key built once).
INDEXES = ByteLRU(INDEX_CACHE_BYTES, max_entries=INDEX_CACHE_ENTRIES)


def get_index(model: CharRNN, text: str | None = None, *, corpus: str | None = None,
              max_chars: int = SAMPLE_CHARS, source: str | None = None,
              fingerprint: str | None = None) -> UnitIndex:
    """The index of ``model`` over ``text``, or, when ``text`` is None, over the tail of corpus
    ``corpus`` or else the model's held-out sample (:func:`training_sample`), from :data:`INDEXES`.

    source: how the index names its sample (default: from the sample, or "text").
    fingerprint: :func:`model_fingerprint` of ``model`` if the caller already has it."""
    if text is None:
        text, sample_source = corpus_sample(corpus, max_chars) if corpus else training_sample(model, max_chars)
        source = source or sample_source
    source = source or "text"
    fingerprint = fingerprint or model_fingerprint(model)
    key = (fingerprint, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), max_chars, source)
    return INDEXES.get_or_compute(
        key, lambda: build_index(model, text, key=fingerprint, source=source, max_chars=max_chars))


def prebuild_indexes(names: list[str] | None = None, max_chars: int = SAMPLE_CHARS) -> list[str]:
    """Build the default index (the held-out training sample) of shipped checkpoints ahead of time,
    e.g. in a background thread when the server starts, so the first visit to the Units view does
    not wait 3–20 s. Models are loaded afresh (the index key is the weights' fingerprint, so the
    page's shared model finds these entries). Returns the names indexed; a checkpoint that cannot
    be loaded or sampled is skipped."""
    from ..checkpoint import list_checkpoints, load_model

    done = []
    for info in list_checkpoints():
        if names is not None and info.name not in names:
            continue
        try:
            get_index(load_model(info.name), max_chars=max_chars)
        except Exception:   # noqa: BLE001 - a warm-up never takes the server down; the page reports
            continue
        done.append(info.name)
    return done


# =========================================================================== unit finder
@dataclass(frozen=True)
class UnitScore:
    unit: UnitRef
    r: float       #: Pearson correlation with the feature
    auc: float     #: AUC of "activation high ⇒ positive"; < 0.5 means the unit is low on it


@dataclass
class FinderResult:
    """The ranking of all U units for one feature over an index's sample.

    r, auc: (U,) float64 over every unit (column order); top: the best ``top`` as UnitScore.
    """

    feature: str
    by: str
    label_rule: str
    n: int
    n_positive: int
    r: Tensor
    auc: Tensor
    top: list[UnitScore]
    seconds: float


def label_for(name: str, values: Tensor) -> tuple[Tensor, str]:
    """The 0/1 label an AUC is computed against (see the module docstring), and its rule."""
    if F.feature_kind(name) == "binary":
        return values > 0.5, f"{name} = 1"
    med = float(values.median())
    if med > 0:
        return values > med, f"{name} > {med:g} (the sample median)"
    return values > 0, f"{name} > 0"


def correlations(index: UnitIndex, values: Tensor) -> Tensor:
    """Pearson r of ``values`` (N,) with every unit: (U,) float64. Raises UnitsError if constant."""
    f = values.double()
    sd = f.std(unbiased=False)
    if not float(sd) > 0:
        raise UnitsError("The feature is constant over the sample, so nothing can track it.")
    fz = (f - f.mean()) / sd
    out = torch.empty(index.num_units, dtype=torch.float64)
    for c0 in range(0, index.num_units, 4 * _CHUNK):
        out[c0:c0 + 4 * _CHUNK] = fz @ index.z[:, c0:c0 + 4 * _CHUNK].double()
    return (out / len(f)).clamp(-1.0, 1.0)


def aucs(index: UnitIndex, label: Tensor) -> Tensor:
    """AUC of every unit for a boolean label (N,), exactly via ranks: (U,) float64."""
    label = label.bool()
    n1 = int(label.sum())
    n0 = label.numel() - n1
    if n1 == 0 or n0 == 0:
        raise UnitsError("The feature's label is all " + ("off" if n1 == 0 else "on") +
                         " over the sample, so an AUC is undefined.")
    N = label.numel()
    use_neg = n1 > n0
    rows = torch.nonzero(~label if use_neg else label).squeeze(1)
    sums = torch.empty(index.num_units, dtype=torch.float64)
    for c0 in range(0, index.num_units, 4 * _CHUNK):
        sums[c0:c0 + 4 * _CHUNK] = index.ranks[rows, c0:c0 + 4 * _CHUNK].double().sum(0)
    if use_neg:
        sums = N * (N + 1) / 2.0 - sums
    return (sums - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def rank_units(index: UnitIndex, feature: str, *, by: str = "auc", top: int = 20,
               values: Tensor | None = None) -> FinderResult:
    """Rank every unit of ``index`` by how well it tracks ``feature`` (a features name, or
    ``regex:<pattern>``); ``values`` (N,) overrides the computed feature. by: "auc" or "r".
    Raises UnitsError / FeatureError with a user-facing message."""
    t0 = time.perf_counter()
    if by not in ("auc", "r"):
        raise UnitsError(f"rank by 'auc' or 'r', not {by!r}")
    if values is None:
        values = index.feature(feature)
    if values.shape != (len(index),):
        raise UnitsError(f"feature values must have shape ({len(index)},), got {tuple(values.shape)}")
    label, rule = label_for(feature, values) if not feature.startswith(F.REGEX_PREFIX) \
        else (values > 0.5, "inside a match")
    r = correlations(index, values)
    auc = aucs(index, label)
    score = (auc - 0.5).abs() if by == "auc" else r.abs()
    tie = r.abs() if by == "auc" else (auc - 0.5).abs()
    order = sorted(range(index.num_units), key=lambda j: (-float(score[j]), -float(tie[j]), j))
    best = [UnitScore(index.units[j], float(r[j]), float(auc[j])) for j in order[:max(0, top)]]
    return FinderResult(feature, by, rule, len(index), int(label.sum()), r, auc, best,
                        time.perf_counter() - t0)


# =========================================================================== hypothesis → match
@dataclass(frozen=True)
class SelectedUnit:
    unit: UnitRef
    sign: int          #: +1: on = high activation; −1: on = low activation
    inside_min: float  #: min over the span of sign·z
    around_max: float  #: max around the span of sign·z

    @property
    def label(self) -> str:
        return f"{self.unit.label} {'high' if self.sign > 0 else 'low'}"


@dataclass
class Hypothesis:
    """Units on inside [a, b) and off around it. ``around``: the (lo, hi) window compared."""

    span: tuple[int, int]
    around: tuple[int, int]
    threshold: float | None        #: the θ used (None when no unit separates at any θ ≥ 0)
    auto_threshold: float | None   #: the automatic θ (see module docstring)
    units: list[SelectedUnit]
    separable: int                 #: unit directions that separate at *some* θ ≥ 0


def _auto_threshold(lo: Tensor, hi: Tensor) -> float | None:
    """θ ≥ 0 in the most intervals (lo, hi] (largest such θ), moved to their common middle."""
    ok = hi > lo
    ok &= hi >= 0
    if not bool(ok.any()):
        return None
    lo, hi = lo[ok], hi[ok]
    cand = hi  # coverage of half-open (lo, hi] peaks at some right end
    cover = (lo[None, :] < cand[:, None]) & (cand[:, None] <= hi[None, :])   # (K, K)
    counts = cover.sum(1)
    best = int(counts.max())
    pick = int(torch.nonzero(counts == best).squeeze(1)[torch.argmax(cand[counts == best])])
    members = cover[pick]
    low = max(float(lo[members].max()), 0.0)
    high = float(hi[members].min())
    return (low + high) / 2.0 if low < high else high


def select_units(index: UnitIndex, tr: Trace, a: int, b: int, *, threshold: float | None = None,
                 around: int | None = None, both_signs: bool = True) -> Hypothesis:
    """Units (and directions) on inside ``tr``'s steps [a, b) and off around; see module docstring.

    ``tr`` must come from the same model as ``index``. threshold None → automatic.
    Raises UnitsError for an empty or out-of-range span, or one with nothing around it.
    """
    T = len(tr)
    if not (0 <= a < b <= T):
        raise UnitsError(f"Select a non-empty span inside the text (0 ≤ start < end ≤ {T}); "
                         f"got [{a}, {b}).")
    w = around if around is not None else min(max(b - a, 2), 10)
    if w < 1:
        raise UnitsError("The window around the span must be at least one character.")
    lo_w, hi_w = max(0, a - w), min(T, b + w)
    if lo_w == a and hi_w == b:
        raise UnitsError("The span covers the whole text: nothing is left around it to be off.")
    acts = activation_matrix(tr)
    if acts.shape[1] != index.num_units:
        raise UnitsError("The trace and the index come from different models.")
    z = index.scaled(acts)                                             # (T, U) float64
    signs = (1, -1) if both_signs else (1,)
    sz = torch.cat([s * z for s in signs], dim=1)                      # (T, S·U)
    inside_min = sz[a:b].min(0).values
    around_max = torch.cat([sz[lo_w:a], sz[b:hi_w]]).max(0).values
    separable = int(((inside_min > around_max) & (inside_min >= 0)).sum())
    auto = _auto_threshold(around_max, inside_min)
    theta = auto if threshold is None else float(threshold)
    chosen: list[SelectedUnit] = []
    if theta is not None:
        sel = (inside_min >= theta) & (around_max < theta)
        U = index.num_units
        for k in torch.nonzero(sel).squeeze(1).tolist():
            chosen.append(SelectedUnit(index.units[k % U], signs[k // U],
                                       float(inside_min[k]), float(around_max[k])))
        chosen.sort(key=lambda s: -min(s.inside_min - theta, theta - s.around_max))
    return Hypothesis((a, b), (lo_w, hi_w), theta, auto, chosen, separable)


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    fraction: float    #: mean fraction of selected unit directions on over the run
    left: str
    text: str
    right: str


def find_matches(index: UnitIndex, hyp: Hypothesis, *, min_fraction: float = 1.0, top: int = 20,
                 context: int = 30) -> tuple[list[Match], int]:
    """Runs of the corpus sample where the hypothesis' units switch on together.

    Returns (the best ``top`` matches, the total number of runs). See the module docstring.
    """
    if not hyp.units or hyp.threshold is None:
        return [], 0
    if not 0 < min_fraction <= 1:
        raise UnitsError("min_fraction must be in (0, 1].")
    cols = torch.tensor([index.column(s.unit) for s in hyp.units])
    signs = torch.tensor([float(s.sign) for s in hyp.units])
    on = index.scaled(index.raw(cols), cols) * signs >= hyp.threshold       # (N, k)
    frac = on.double().mean(1)
    need = math.ceil(min_fraction * len(hyp.units) - 1e-9) / len(hyp.units)
    mask = frac >= need - 1e-12
    m = torch.cat([torch.tensor([False]), mask, torch.tensor([False])]).to(torch.int8)
    d = m[1:] - m[:-1]
    starts = torch.nonzero(d == 1).squeeze(1).tolist()
    ends = torch.nonzero(d == -1).squeeze(1).tolist()
    span_len = hyp.span[1] - hyp.span[0]
    runs = [(s, e, float(frac[s:e].mean())) for s, e in zip(starts, ends)]
    runs.sort(key=lambda r: (-r[2], abs((r[1] - r[0]) - span_len), r[0]))
    text = index.text
    out = [Match(s, e, f, text[max(0, s - context):s], text[s:e], text[e:e + context])
           for s, e, f in runs[:max(0, top)]]
    return out, len(runs)


# =========================================================================== counterfactual
@dataclass
class Counterfactual:
    """Effect of one edit over the following steps (see the module docstring for the alignment).

    steps, orig_pos, edit_pos: (K,) long; delta: trace name (``layer0.h``, ``layer0.c``) → (K,)
    float64 ‖·‖₂ differences; kl: (K,) float64 KL(P_t ‖ P'_t) in nats.
    """

    original: str
    edited: str
    start: int
    end: int
    replacement: str
    steps: Tensor
    orig_pos: Tensor
    edit_pos: Tensor
    delta: dict[str, Tensor]
    kl: Tensor
    unknown_in_edit: int

    def memory(self, name: str, tol: float = 1e-2, relative: bool = True) -> int | None:
        """Steps j after which ``delta[name]`` (or "kl") stays below tol (× its j=0 value when
        ``relative``) to the end; None when it never settles within the text."""
        v = self.kl if name == "kl" else self.delta[name]
        if v.numel() == 0:
            return None
        bound = tol * float(v[0]) if relative else tol
        above = torch.nonzero(v > bound).squeeze(1)
        if above.numel() == 0:
            return 0
        last = int(above[-1])
        return last + 1 if last + 1 < v.numel() else None


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(P ‖ Q) per row from log-probabilities (…, |V|): Σ p (log p − log q), float64, nats."""
    lp, lq = log_p.double(), log_q.double()
    return (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)


def counterfactual(model: CharRNN, text: str, start: int, end: int, replacement: str) -> Counterfactual:
    """Replace ``text[start:end]`` (indices into the preprocessed text) by ``replacement``; compare.

    Raises UnitsError / TextError with a user-facing message for bad indices or texts.
    """
    original = preprocess(text, model.config.preprocessing)
    if not (0 <= start <= end <= len(original)):
        raise UnitsError(f"The edit must lie inside the text: 0 ≤ start ≤ end ≤ {len(original)}, "
                         f"got [{start}, {end}).")
    edited = original[:start] + replacement + original[end:]
    if not original or not edited:
        raise UnitsError("Both the text and the edited text need at least one character.")
    t_o = trace(model, original, preprocess_text=False)
    t_e = trace(model, edited, preprocess_text=False)
    shift = len(replacement) - (end - start)
    j0 = 0 if (end - 1 >= 0 and start + len(replacement) - 1 >= 0) else 1
    js = torch.arange(j0, len(original) - end + 1)
    orig_pos = end - 1 + js
    edit_pos = orig_pos + shift
    delta = {}
    for name in t_o.names():
        if name.endswith(".h") or name.endswith(".c"):
            delta[name] = (t_o[name][orig_pos].double() - t_e[name][edit_pos].double()).norm(dim=1)
    kl = kl_divergence(t_o.log_probs[orig_pos], t_e.log_probs[edit_pos])
    unknown = sum(1 for p in t_e.unknown_positions if start <= p < start + len(replacement))
    return Counterfactual(original, edited, start, end, replacement, js, orig_pos, edit_pos,
                          delta, kl, unknown)


# =========================================================================== ablation
def _layer_step_loop(model: CharRNN, index: int, inp: Tensor, unit: int | None, kind: str,
                     value: float) -> Tensor:
    """Layer ``index`` over inputs (T, d) from the zero state, one step at a time, forcing
    ``kind``[unit] := value after every step (no forcing when unit is None). Returns H (T, h).
    Reads the layer's parameters; writes only fresh tensors."""
    layer = model.layers[index]
    cell = model.config.cell
    H = model.config.hidden_size
    w_hh_t = layer.weight_hh_l0.T
    b_hh = layer.bias_hh_l0
    x_part = torch.addmm(layer.bias_ih_l0, inp, layer.weight_ih_l0.T)     # (T, G·h)
    h = inp.new_zeros(H)
    c = inp.new_zeros(H)
    out = inp.new_empty((inp.shape[0], H))
    for t in range(inp.shape[0]):
        hp = torch.addmv(b_hh, w_hh_t.T, h)                               # H_{t-1} W_hh + b_hh
        if cell == "lstm":
            i, f, g, o = (x_part[t] + hp).split(H)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if unit is not None and kind == "c":
                c = c.clone()
                c[unit] = value
            h = torch.sigmoid(o) * torch.tanh(c)
        elif cell == "gru":
            xr, xz, xn = x_part[t].split(H)
            hr, hz, hn = hp.split(H)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
        else:
            pre = x_part[t] + hp
            h = torch.tanh(pre) if cell == "rnn_tanh" else torch.relu(pre)
        if unit is not None and kind == "h":
            h = h.clone()
            h[unit] = value
        out[t] = h
    return out


@torch.inference_mode()
def forward_with_unit(model: CharRNN, ids: Tensor, layer: int, unit: int | None, kind: str = "h",
                      value: float = 0.0) -> tuple[Tensor, list[Tensor]]:
    """Log-probabilities (T, |V|) and per-layer H [(T, h)] with one unit forced (see module doc).

    Layers below ``layer`` run fused and unchanged; ``layer`` runs step by step; layers above run
    fused on its output. ``unit=None`` runs the same path without forcing (the baseline)."""
    inp = model.one_hot(ids)
    hs = []
    for index, mod in enumerate(model.layers):
        if index == layer:
            out = _layer_step_loop(model, index, inp, unit, kind, value)
        else:
            out = mod(inp)[0]
        hs.append(out)
        inp = out
    logits = model.output(inp)
    return torch.log_softmax(logits, dim=-1), hs


@dataclass
class Ablation:
    """Predictions with and without one unit forced.

    log_probs_base, log_probs_ablated: (T, |V|); surprisal_*: (T−1,) nats of the actual next
    character; kl: (T,) KL(P_base ‖ P_ablated); argmax_changed: (T,) bool; unit_base: (T,) the
    unit's own unforced trajectory.
    """

    unit: UnitRef
    mode: str
    value: float
    chars: list[str]
    tokens: tuple[str, ...]
    log_probs_base: Tensor
    log_probs_ablated: Tensor
    surprisal_base: Tensor
    surprisal_ablated: Tensor
    kl: Tensor
    argmax_changed: Tensor
    unit_base: Tensor

    @property
    def delta_surprisal(self) -> Tensor:
        return self.surprisal_ablated - self.surprisal_base

    @property
    def mean_delta(self) -> float:
        d = self.delta_surprisal
        return float(d.double().mean()) if d.numel() else 0.0

    def top(self, t: int, k: int = 5, ablated: bool = False) -> list[tuple[str, float]]:
        """The k most likely next characters at step t, with probabilities."""
        lp = (self.log_probs_ablated if ablated else self.log_probs_base)[t]
        vals, idx = lp.exp().topk(min(k, lp.numel()))
        return [(self.tokens[int(i)], float(v)) for v, i in zip(vals, idx)]


def ablate(model: CharRNN, text: str, layer: int, unit: int, *, kind: str = "h", mode: str = "zero",
           value: float = 0.0) -> Ablation:
    """Force unit ``kind``[unit] of ``layer`` to 0 (mode "zero") or ``value`` (mode "clamp") over
    ``text`` (the model's preprocessing applied) and compare predictions. Never changes ``model``."""
    cfg = model.config
    if not 0 <= layer < cfg.num_layers:
        raise UnitsError(f"layer must be in 0..{cfg.num_layers - 1}, got {layer}")
    if not 0 <= unit < cfg.hidden_size:
        raise UnitsError(f"unit must be in 0..{cfg.hidden_size - 1}, got {unit}")
    if kind not in unit_kinds(model):
        raise UnitsError(f"kind must be one of {unit_kinds(model)} for a {cfg.cell} model")
    if mode not in ("zero", "clamp"):
        raise UnitsError("mode must be 'zero' or 'clamp'")
    value = 0.0 if mode == "zero" else float(value)
    if not math.isfinite(value):
        raise UnitsError("The clamp value must be a finite number.")
    prepared = preprocess(text, cfg.preprocessing)
    if not prepared:
        raise TextError("The text is empty: type at least one character.")
    if len(prepared) > MAX_TRACE_CHARS:
        raise TextError(f"The text has {len(prepared):,} characters; at most {MAX_TRACE_CHARS:,}.")
    ids = model.vocab.encode(prepared).ids
    lp0, hs0 = forward_with_unit(model, ids, layer, None, kind)
    lp1, _ = forward_with_unit(model, ids, layer, unit, kind, value)
    if kind == "h":
        base_unit = hs0[layer][:, unit].clone()
    else:  # the unforced C_t of the unit, from the trace (same model, same text)
        base_unit = trace(model, prepared, preprocess_text=False)[f"layer{layer}.c"][:, unit].clone()
    nxt = ids[1:, None]
    s0 = -lp0[:-1].gather(1, nxt).squeeze(1)
    s1 = -lp1[:-1].gather(1, nxt).squeeze(1)
    return Ablation(UnitRef(layer, kind, unit), mode, value, list(prepared), cfg.tokens, lp0, lp1,
                    s0, s1, kl_divergence(lp0, lp1), lp0.argmax(1) != lp1.argmax(1), base_unit)


# =========================================================================== projection
@dataclass
class Projection:
    """PCA of a (T, h) trajectory: coords (T, k), explained (k,) ratios, components (h, k),
    mean (h,), singular_values (min(T, h),); all float64."""

    coords: Tensor
    explained: Tensor
    components: Tensor
    mean: Tensor
    singular_values: Tensor


def pca(states: Tensor, k: int = 2) -> Projection:
    """Project ``states`` (T, h) on its top-k principal components (torch.linalg.svd, centred)."""
    if states.dim() != 2:
        raise UnitsError(f"PCA needs a (T, h) matrix, got shape {tuple(states.shape)}")
    T, H = states.shape
    if T < 2:
        raise UnitsError("PCA needs at least two steps: type a longer text.")
    k = max(1, min(k, T, H))
    x = states.double()
    mean = x.mean(0)
    xc = x - mean
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    comps = vh[:k].T.clone()                                        # (h, k)
    for j in range(k):
        if comps[int(comps[:, j].abs().argmax()), j] < 0:
            comps[:, j] = -comps[:, j]
    total = float((s ** 2).sum())
    explained = (s[:k] ** 2) / total if total > 0 else torch.zeros(k, dtype=torch.float64)
    return Projection(xc @ comps, explained, comps, mean, s)


def project_trace(tr: Trace, names: list[str] | tuple[str, ...] = ("layer0.h",), k: int = 2) -> Projection:
    """PCA of the concatenation of trace tensors ``names`` (each (T, h)) over the steps."""
    missing = [n for n in names if n not in tr]
    if missing or not names:
        raise UnitsError(f"Unknown state(s) {missing}; available: "
                         f"{[n for n in tr.names() if n.endswith(('.h', '.c'))]}")
    return pca(torch.cat([tr[n] for n in names], dim=1), k)
