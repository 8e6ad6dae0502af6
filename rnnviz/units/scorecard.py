"""A trust scorecard for every (unit, feature): the statistic, two controls, a causal test, a verdict.

``scorecard(model, text, features)`` returns a pandas DataFrame, one row per (feature, unit in
scope), features in the order given, units in :func:`rnnviz.units.unit_refs` column order.
Statistics and controls are defined in :mod:`rnnviz.units.controls`, ablation in
:mod:`rnnviz.units.causal`; the columns:

=======================  =====================================================================
column                   meaning
=======================  =====================================================================
layer, state, unit       the unit ``layer{layer}.{state}[{unit}]`` (state "h" or "c"); with an SAE
                         ``basis`` (:mod:`rnnviz.units.basis`): state "h:sae" / "c:sae", unit = the
                         dictionary feature's index
feature, kind            the feature's name; "auc" (binary feature) or "r" (graded feature)
stat                     AUC of "activation high ⇒ feature on", or Pearson r, over the text
effect                   |AUC − ½| or |r|
random_init_p95          95th percentile of the effect over every in-scope unit of ``controls``
                         untrained models of the same config (build_model, seeds from ``seed``)
p_raw                    two-sided p of the circular-shift (block) permutation null, normal tail
p_perm                   the same null's empirical p (resolution 1 / (1 + number of shifts))
p_value                  p_raw Holm-corrected over all units × features of this call
beats_controls           effect > random_init_p95 and p_value < ALPHA (0.05)
causal_tested            whether the unit was mean-ablated for this feature (see below)
delta_loss               mean rise in held-out loss (nats/char) when the unit is mean-ablated, over
                         the characters where the feature is on (NaN when not tested)
delta_loss_elsewhere     the same over the other characters
random_delta_z           (selective − mean) / sd of the selective effects (delta_loss −
                         delta_loss_elsewhere) of ablating ``draws`` random single in-scope units
                         (the same draws for every feature; sd floored at SD_FLOOR nats)
verdict                  "causal": beats the controls, random_delta_z ≥ Z_CAUSAL and
                         delta_loss > delta_loss_elsewhere and delta_loss ≥ ``min_delta``
                         (MIN_DELTA, 0.01 nats/char); "correlational": beats the controls
                         without that (or not ablated, see ``max_causal``); "chance": does not
                         beat the controls
=======================  =====================================================================

Only the units that beat the correlational controls are ablated (a unit that does not cannot be
"causal" for the feature), at most ``max_causal`` per feature, largest effect first; the others
that beat the controls keep ``causal_tested`` False and the verdict "correlational". The random
draws are ablated once and reused for every feature, and a unit's ablation once for all features.

Why ``min_delta``: in an untrained model a unit that fires on a feature changes the predictions
mostly where the feature is on, so its (random-signed, tiny) change in loss can be "selective"
against random units; a causal verdict also asks that the rise in loss be large enough to matter.

The text is put through the model's preprocessing; feature values given as numbers must have one
value per character of the preprocessed text. ``features``: a dict {name: sequence of numbers}
(binary when every value is 0 or 1, graded otherwise), or one or several built-in feature names
(:mod:`rnnviz.features`, also ``regex:<pattern>``). Deterministic for a ``seed``: control-model
seeds and random draws come from one ``torch.Generator(seed)``, never from the global RNG.

``cache`` (e.g. the sidecar of :mod:`rnnviz.units.scorecard_cache`): the ``controls`` entry of an
earlier call's ``DataFrame.attrs``; when it was made from the same weights, text and settings, its
random-init percentiles and random-draw selective effects are reused (bit for bit the same
numbers), so only the model's own trace, the permutation null and the candidates' ablations run.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor

from .. import features as F
from ..model import CharRNN
from ..trace import MAX_TRACE_CHARS, trace_ids
from ..vocab import preprocess
from . import causal as C
from . import controls as K
from .basis import UnitBasis
from .refs import UnitRef, UnitsError, model_fingerprint, unit_refs

log = logging.getLogger(__name__)

ALPHA = 0.05
Z_CAUSAL = 2.0
#: Smallest rise in loss (nats/char) where the feature is on that counts as the model using a unit.
MIN_DELTA = 0.01
SD_FLOOR = 1e-6
FORMAT = "rnnviz.scorecard-controls/1"
COLUMNS = ["layer", "state", "unit", "feature", "kind", "stat", "effect", "random_init_p95", "p_raw",
           "p_perm", "p_value", "beats_controls", "causal_tested", "delta_loss", "delta_loss_elsewhere",
           "random_delta_z", "verdict"]


class ScorecardError(UnitsError):
    """The scorecard cannot be computed for these inputs; the message says why (a ValueError)."""


def _make_feature(name: str, values, binary: bool | None = None) -> K.Feature:
    """A :class:`~rnnviz.units.controls.Feature` from values (T,); binary None: decided by the values."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if not bool(torch.isfinite(v).all()):
        raise ScorecardError(f"The feature {name!r} has values that are not finite numbers.")
    if v.numel() == 0 or float(v.max()) == float(v.min()):
        raise ScorecardError(f"The feature {name!r} is constant over the text, so nothing can track it.")
    if binary is None:
        binary = bool(((v == 0) | (v == 1)).all())
    if binary:
        return K.Feature(name, v, "auc", v > 0.5, f"{name} = 1")
    med = float(v.median())
    if med == float(v.max()):           # most values at the top: "on" is the top
        return K.Feature(name, v, "r", v >= med, f"{name} = {med:g} (its maximum)")
    if med > float(v.min()):
        return K.Feature(name, v, "r", v > med, f"{name} > {med:g} (its median)")
    return K.Feature(name, v, "r", v > med, f"{name} > {med:g} (its minimum)")


def resolve_features(features, prepared: str, raw_chars: int) -> list[K.Feature]:
    """Features as a list (see the module docstring). Raises ScorecardError."""
    if isinstance(features, str):
        features = [features]
    if isinstance(features, Mapping):
        items = list(features.items())
        if not items:
            raise ScorecardError("Give at least one feature.")
        out = []
        for name, values in items:
            n = len(values)
            if n != len(prepared):
                note = (f" (the model's preprocessing turned the {raw_chars:,} characters given into "
                        f"{len(prepared):,})" if raw_chars != len(prepared) else "")
                raise ScorecardError(f"The feature {name!r} has {n:,} values but the text has "
                                     f"{len(prepared):,} characters{note}.")
            out.append(_make_feature(str(name), values))
        return out
    names = list(features)
    if not names:
        raise ScorecardError("Give at least one feature.")
    out = []
    for name in names:
        try:
            values = F.feature_values(str(name), prepared)
            kind = F.feature_kind(str(name))
        except F.FeatureError as err:
            raise ScorecardError(str(err)) from None
        out.append(_make_feature(str(name), values, binary=kind == "binary"))
    return out


def scope_units(model: CharRNN, layers: Sequence[int] | None, states: Sequence[str] | None) -> list[UnitRef]:
    """The units in scope, in column order. Raises ScorecardError for an unknown layer or state."""
    kinds = model.spec.state_kinds
    nl = model.config.num_layers
    bad_l = [l for l in (layers or ()) if not (isinstance(l, int) and 0 <= l < nl)]
    bad_s = [s for s in (states or ()) if s not in kinds]
    if bad_l or bad_s or (layers is not None and not layers) or (states is not None and not states):
        raise ScorecardError(f"layers must be among 0..{nl - 1} and states among {list(kinds)}; "
                             f"got layers={layers!r}, states={states!r}.")
    return [u for u in unit_refs(model) if (layers is None or u.layer in layers)
            and (states is None or u.kind in states)]


def _check_text(model: CharRNN, text: str, min_shift: int) -> str:
    if not isinstance(text, str) or not text:
        raise ScorecardError("The text is empty: give at least one character.")
    prepared = preprocess(text, model.config.preprocessing)
    need = 2 * min_shift + 20
    if len(prepared) < need:
        raise ScorecardError(f"The text has {len(prepared):,} characters; the permutation control needs "
                             f"at least {need:,} (shifts of at least {min_shift} characters).")
    if len(prepared) > MAX_TRACE_CHARS:
        raise ScorecardError(f"The text has {len(prepared):,} characters; at most {MAX_TRACE_CHARS:,}.")
    return prepared


def _settings_key(model, prepared, controls, draws, seed, units, min_shift, basis) -> dict:
    key = {"format": FORMAT, "fingerprint": model_fingerprint(model),
            "text_sha256": hashlib.sha256(prepared.encode("utf-8", "surrogatepass")).hexdigest(),
            "chars": len(prepared), "controls": controls, "draws": draws, "seed": seed,
            "min_shift": min_shift, "scope": sorted({u.tensor_name for u in units})}
    return key if basis.key is None else {**key, "basis": basis.key}


def _usable(cache, key: dict) -> dict:
    """The per-feature entries of ``cache`` when it was made with exactly ``key``'s settings."""
    if not isinstance(cache, Mapping):
        return {}
    if any(cache.get(k) != v for k, v in key.items()):
        log.info("scorecard cache not used: it was made with other weights, text or settings")
        return {}
    feats = cache.get("features")
    return dict(feats) if isinstance(feats, Mapping) else {}


def _draw_units(gen: torch.Generator, units: list[UnitRef], draws: int) -> list[UnitRef]:
    """``draws`` random units of the scope (without replacement while there are enough)."""
    picks: list[int] = []
    while len(picks) < draws:
        picks += torch.randperm(len(units), generator=gen).tolist()
    return [units[i] for i in picks[:draws]]


def _random_selective(model, ids, drawn, means, feats, bases, basis) -> dict[str, list[float]]:
    """Feature name → the selective effects of ablating each drawn unit (causal module doc)."""
    deltas = torch.stack([basis.ablation_delta(model, ids, u, means[u], bases(u.layer)) for u in drawn])
    out = {}
    for f in feats:
        on, off = C.split_means(deltas, f.active)
        out[f.name] = [float(x) for x in (on - off)]
    return out


def _check_args(controls, draws, min_shift, max_causal) -> None:
    for name, v, lo in (("controls", controls, 1), ("draws", draws, 2), ("min_shift", min_shift, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ScorecardError(f"{name} must be an integer ≥ {lo}, got {v!r}")
    if max_causal is not None and (not isinstance(max_causal, int) or max_causal < 0):
        raise ScorecardError(f"max_causal must be None or an integer ≥ 0, got {max_causal!r}")


def _candidates(eff: Tensor, beats: Tensor, max_causal: int | None, extra: set[int]) -> list[int]:
    """Columns to ablate for one feature: those that beat the controls, largest effect first, at
    most ``max_causal``, plus the columns in ``extra`` that beat the controls."""
    cols = torch.nonzero(beats).squeeze(1).tolist()
    cols.sort(key=lambda j: (-float(eff[j]), j))
    keep = cols if max_causal is None else cols[:max_causal]
    return keep + [j for j in cols if j in extra and j not in keep]


def _causal_columns(model, ids, units, means, feats, beats, effs, max_causal, bases, extra, basis):
    """(delta_loss, delta_loss_elsewhere, tested) per feature, (U,) each, from one ablation per
    candidate unit (shared across features)."""
    plan = {f.name: _candidates(effs[f.name], beats[f.name], max_causal, extra) for f in feats}
    deltas: dict[int, Tensor] = {}
    for j in sorted({j for cols in plan.values() for j in cols}):
        u = units[j]
        deltas[j] = basis.ablation_delta(model, ids, u, means[u], bases(u.layer))
    out = {}
    for f in feats:
        on = torch.full((len(units),), math.nan, dtype=torch.float64)
        off = on.clone()
        tested = torch.zeros(len(units), dtype=torch.bool)
        for j in plan[f.name]:
            a, b = C.split_means(deltas[j], f.active)
            on[j], off[j], tested[j] = a, b, True
        out[f.name] = (on, off, tested)
    return out


def _verdicts(beats: Tensor, tested: Tensor, on: Tensor, off: Tensor, z: Tensor, min_delta: float) -> list[str]:
    causal = beats & tested & (z >= Z_CAUSAL) & (on > off) & (on >= min_delta)
    return ["causal" if c else "correlational" if b else "chance"
            for c, b in zip(causal.tolist(), beats.tolist())]


def _correlational(model, ids, feats, basis, seeds, cached, min_shift) -> dict:
    """The model's trace, every statistic, the permutation null, the random-init control, the Holm
    correction and which (unit, feature) beat both controls."""
    with torch.inference_mode():
        tr, _ = trace_ids(model, ids, gates=model.has_cell_state)
        acts = basis.matrix(model, tr).double()
    units = basis.units
    mat, col_means = K.UnitMatrix(acts), acts.mean(0)
    stats = {f.name: K.observed(mat, f) for f in feats}
    effs = {f.name: K.effect(stats[f.name], f.kind) for f in feats}
    nulls = {f.name: K.shift_null(mat, f, min_shift) for f in feats}
    missing = [f for f in feats if f.name not in cached]
    pooled = basis.control_effects(model, ids, missing, seeds) if missing else {}
    p95 = {f.name: float(cached[f.name]["random_init_p95"]) if f.name in cached else K.p95(pooled[f.name])
           for f in feats}
    p_adj = K.holm(torch.stack([nulls[f.name][0] for f in feats]))
    beats = {f.name: (effs[f.name] > p95[f.name]) & (p_adj[i] < ALPHA) for i, f in enumerate(feats)}
    return {"means": {u: float(col_means[j]) for j, u in enumerate(units)}, "stats": stats, "effs": effs,
            "nulls": nulls, "p95": p95, "p_adj": p_adj, "beats": beats}


class _Bases:
    """Baseline surprisal per layer (:func:`rnnviz.units.causal.base_surprisal`), each traced once."""

    def __init__(self, model: CharRNN, ids: Tensor):
        self.model, self.ids, self.done = model, ids, {}

    def __call__(self, layer: int) -> Tensor:
        if layer not in self.done:
            self.done[layer] = C.base_surprisal(self.model, self.ids, layer)
        return self.done[layer]


def _frame(units: list[UnitRef], feats: list[K.Feature], corr: dict, rand: dict, causal: dict,
           min_delta: float) -> pd.DataFrame:
    """The rows of the scorecard (module docstring), features in order, units in column order."""
    frames = []
    for i, f in enumerate(feats):
        r = torch.tensor(rand[f.name], dtype=torch.float64)
        on, off, tested = causal[f.name]
        z = (on - off - r.mean()) / max(float(r.std()), SD_FLOOR)
        beats = corr["beats"][f.name]
        frames.append(pd.DataFrame({
            "layer": [u.layer for u in units], "state": [u.kind for u in units], "unit": [u.unit for u in units],
            "feature": f.name, "kind": f.kind, "stat": corr["stats"][f.name].numpy(),
            "effect": corr["effs"][f.name].numpy(), "random_init_p95": corr["p95"][f.name],
            "p_raw": corr["nulls"][f.name][0].numpy(), "p_perm": corr["nulls"][f.name][1].numpy(),
            "p_value": corr["p_adj"][i].numpy(), "beats_controls": beats.numpy(), "causal_tested": tested.numpy(),
            "delta_loss": on.numpy(), "delta_loss_elsewhere": off.numpy(), "random_delta_z": z.numpy(),
            "verdict": _verdicts(beats, tested, on, off, z, min_delta)}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def scorecard(model: CharRNN, text: str, features, *, controls: int = 5, draws: int = 20, seed: int = 0,
              layers: Sequence[int] | None = None, states: Sequence[str] | None = None,
              min_shift: int = 100, max_causal: int | None = None, min_delta: float = MIN_DELTA,
              test_units: Sequence[str] = (), cache: Mapping | None = None, basis=None) -> pd.DataFrame:
    """The scorecard of every unit in scope for every feature (columns and rules: module docstring).

    controls: untrained models in the random-init control (≥ 1); draws: random single units ablated
    for the z-score (≥ 2); seed: everything random; layers / states: the scope (None: all layers,
    all of ``h``/``c``); min_shift: the smallest circular shift of the permutation control, in
    characters (the text needs ≥ 2·min_shift + 20); max_causal: most units ablated per feature
    (None: all that beat the controls); min_delta: the verdict's smallest rise in loss where the
    feature is on; test_units: unit names (``layer0.c[30]``) ablated whenever they beat the controls,
    beyond ``max_causal`` (to re-judge a claim); cache: reusable controls (module docstring);
    basis: None (hidden units) or a :class:`rnnviz.units.basis.SAEBasis` (the dictionary features of
    an SAE, scored and controlled as that module says; ``layers``/``states`` are then ignored).
    ``DataFrame.attrs["controls"]``: the settings and the controls of this call (a JSON-ready dict,
    what ``cache`` takes); ``attrs["rules"]``: feature → where it counts as on.
    Raises ScorecardError (a ValueError) for an empty or short text, lengths that differ, a constant
    or non-finite feature, an unknown feature name, a bad scope or setting. Never changes ``model``."""
    _check_args(controls, draws, min_shift, max_causal)
    prepared = _check_text(model, text, min_shift)
    feats = resolve_features(features, prepared, len(text))
    if basis is None:
        basis = UnitBasis(scope_units(model, layers, states))
    else:
        basis.check(model)
    units = basis.units
    ids = model.vocab.encode(prepared).ids
    gen = torch.Generator().manual_seed(int(seed))
    seeds, drawn = K.control_seeds(gen, controls), _draw_units(gen, units, draws)
    key = _settings_key(model, prepared, controls, draws, seed, units, min_shift, basis)
    cached = _usable(cache, key)
    corr = _correlational(model, ids, feats, basis, seeds, cached, min_shift)
    bases = _Bases(model, ids)
    if all(isinstance(cached.get(f.name), Mapping) and "random_selective" in cached[f.name] for f in feats):
        rand = {f.name: [float(x) for x in cached[f.name]["random_selective"]] for f in feats}
    else:
        rand = _random_selective(model, ids, drawn, corr["means"], feats, bases, basis)
    extra = {j for j, u in enumerate(units) if u.name in set(test_units)}
    causal = _causal_columns(model, ids, units, corr["means"], feats, corr["beats"], corr["effs"],
                             max_causal, bases, extra, basis)
    df = _frame(units, feats, corr, rand, causal, float(min_delta))
    df.attrs["controls"] = {**key, "control_seeds": seeds, "draw_units": [u.name for u in drawn],
                            "features": {f.name: {"kind": f.kind, "random_init_p95": corr["p95"][f.name],
                                                  "random_selective": rand[f.name]} for f in feats}}
    df.attrs["rules"] = {f.name: f.rule for f in feats}
    return df
