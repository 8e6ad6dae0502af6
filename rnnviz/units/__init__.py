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
    ``val_fraction`` (rnnviz.training holds out the last fraction of the preprocessed corpus), the
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
    KL(P_t ‖ P'_t) in nats of the next-character distributions. Computed by
    :func:`rnnviz.interventions.counterfactual_edit`; ``memory`` is its ``effect_duration`` rule,
    the same one the Lesson's "forgotten after" uses.

Ablation (:func:`ablate`)
    One unit forced to a value (0 for "zero", any number for "clamp") after every step of its layer:
    for ``h``, H_t[j] := v (what the next step, the layer above and the output read); for the LSTM's
    ``c``, C_t[j] := v before H_t = O_t ⊙ tanh(C_t). Computed by a hook on that trace name
    (:func:`rnnviz.interventions.ablate`): that layer runs step by step (rnnviz.cells), reading the
    shared model's parameters and writing only its own tensors (layers below run unchanged, layers
    above run fused on the changed inputs). The baseline goes through the very same code path with a
    hook that changes nothing, so every difference is due to the intervention.

Projection (:func:`pca`)
    PCA of a (T, h) state trajectory by ``torch.linalg.svd`` of the centred data (float64):
    coordinates X_c V_k, explained-variance ratios S_k² / Σ S², each component's sign fixed so its
    largest-magnitude loading is positive.

Scorecard (:func:`scorecard`, :mod:`.scorecard`)
    Whether a (unit, feature) relation can be believed: the statistic against a random-init control
    (untrained models of the same config) and a block-permutation p-value (circular shifts,
    Holm-corrected), then mean-ablation through the interventions hooks against random single-unit
    ablations; verdict ``causal`` / ``correlational`` / ``chance``. Definitions in
    :mod:`.scorecard`, :mod:`.controls`, :mod:`.causal`; the cached controls of shipped checkpoints
    in :mod:`.scorecard_cache`.

``nice -n 15 python -m tools.units_report`` (run from the repository root) measures every shipped
checkpoint (docs/UNITS.md).

Modules (one concern each; every name is re-exported here): :mod:`.refs` (units, their column
order, the weights' fingerprint, UnitsError), :mod:`.sample` (corpus sample), :mod:`.index`
(UnitIndex and the shared cache INDEXES), :mod:`.finder` (feature ranking), :mod:`.hypothesis`
(hypothesis → match), :mod:`.counterfactual`, :mod:`.ablation`, :mod:`.projection`, :mod:`.stats` (the finder's numbers
shipped beside a checkpoint, ``<name>.units.json``, so rankings show without the corpus).
"""

from __future__ import annotations

from .ablation import Ablation, ablate, forward_with_unit
from .counterfactual import Counterfactual, counterfactual, kl_divergence
from .finder import FinderResult, UnitScore, aucs, correlations, label_for, order_units, rank_units
from .hypothesis import Hypothesis, Match, SelectedUnit, find_matches, select_units
from .index import (FEATURE_CACHE_SIZE, INDEX_CACHE_BYTES, INDEX_CACHE_ENTRIES, INDEXES, MAX_INDEX_ELEMENTS,
                    UnitIndex, average_ranks, build_index, get_index, index_capacity, prebuild_indexes)
from .projection import Projection, pca, project_trace
from .scorecard import ScorecardError, scorecard
from .refs import UnitRef, UnitsError, activation_matrix, model_fingerprint, unit_kinds, unit_refs
from .sample import SAMPLE_CHARS, CorpusMissing, corpus_sample, held_out_sample, training_sample
from .stats import UnitStats, load_stats, stats_path, unit_stats, write_unit_stats

__all__ = [
    "Ablation", "CorpusMissing", "Counterfactual", "FEATURE_CACHE_SIZE", "FinderResult", "Hypothesis", "INDEXES",
    "INDEX_CACHE_BYTES", "INDEX_CACHE_ENTRIES", "MAX_INDEX_ELEMENTS", "Match", "Projection",
    "SAMPLE_CHARS", "ScorecardError", "SelectedUnit", "UnitIndex", "UnitRef", "UnitScore", "UnitsError", "ablate",
    "activation_matrix", "aucs", "average_ranks", "build_index", "correlations", "corpus_sample",
    "counterfactual", "find_matches", "forward_with_unit", "get_index", "index_capacity",
    "kl_divergence", "label_for", "model_fingerprint", "pca", "prebuild_indexes", "project_trace",
    "rank_units", "scorecard", "select_units", "training_sample", "unit_kinds", "unit_refs",
    "UnitStats", "held_out_sample", "load_stats", "order_units", "stats_path", "unit_stats",
    "write_unit_stats",
]
