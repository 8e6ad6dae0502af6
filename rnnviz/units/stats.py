"""Unit statistics shipped beside a checkpoint, so the unit finder ranks units without its corpus.

:func:`unit_stats` measures a model on its held-out sample (the same sample, index and
:func:`~rnnviz.units.finder.rank_units` the Units view uses) and keeps only numbers: for every
built-in feature, Pearson r and AUC of every unit, (U,) each, rounded to :data:`DECIMALS`
decimals, with the AUC's label rule and the count of positive steps. No sample text is stored.

The statistics live in a sidecar ``<checkpoint stem>.units.json`` next to the ``.safetensors`` file
(:func:`stats_path`), not in the checkpoint's metadata: the weights file, its sha256 and the app's
cache keys stay unchanged, the file can be regenerated (``python -m tools.unit_stats``) without
rewriting weights, and a checkpoint without one still loads. The sidecar records the weights'
:func:`~rnnviz.units.refs.model_fingerprint`; :func:`load_stats` ignores a sidecar whose
fingerprint does not match the model (a retrained or swapped checkpoint).

``python -m rnnviz.training --out X.safetensors`` writes the sidecar at the end of training;
``python -m tools.unit_stats [NAME ...]`` (re)computes it for shipped checkpoints from their corpora.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import features as F
from ..model import CharRNN
from .finder import FinderResult, UnitScore, order_units, rank_units
from .index import build_index
from .refs import UnitRef, UnitsError, model_fingerprint, unit_refs
from .sample import SAMPLE_CHARS, training_sample

FORMAT = "rnnviz.unit-stats/1"
#: Decimals kept of every r and AUC (the tables show three).
DECIMALS = 4


def unit_stats(model: CharRNN, text: str, source: str = "text") -> dict:
    """The finder's per-unit statistics of ``model`` on ``text`` (a JSON-ready dict; see the module
    docstring). A feature the finder cannot rank on this text (constant, or a one-class label)
    keeps the finder's message under ``"error"`` instead of numbers."""
    index = build_index(model, text, source=source)
    feats: dict[str, dict] = {}
    for name in F.FEATURE_NAMES:
        try:
            res = rank_units(index, name, top=0)
        except UnitsError as err:
            feats[name] = {"error": str(err)}
            continue
        feats[name] = {"label_rule": res.label_rule, "n_positive": res.n_positive,
                       "r": [round(float(v), DECIMALS) for v in res.r],
                       "auc": [round(float(v), DECIMALS) for v in res.auc]}
    return {"format": FORMAT, "fingerprint": model_fingerprint(model), "units": index.num_units,
            "sample": {"source": index.source, "chars": len(index),
                       "sha256": hashlib.sha256(index.text.encode("utf-8")).hexdigest()},
            "features": feats}


def stats_path(checkpoint: str | os.PathLike) -> Path:
    """``<dir>/<stem>.units.json`` for ``<dir>/<stem>.safetensors``."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".units.json")


def write_unit_stats(model: CharRNN, checkpoint: str | os.PathLike, full_text: str | None = None,
                     max_chars: int = SAMPLE_CHARS, corpora_dir: str | os.PathLike | None = None) -> Path:
    """Measure ``model`` on its held-out sample (:func:`training_sample`; ``full_text`` is the raw
    corpus when the caller has it, else it is read from ``corpora_dir``) and write the sidecar of
    ``checkpoint``. Returns its path."""
    sample, source = training_sample(model, max_chars, full_text=full_text, corpora_dir=corpora_dir)
    path = stats_path(checkpoint)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(unit_stats(model, sample, source), separators=(",", ":")) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_after_training(out: str | os.PathLike | None, corpus_text: str) -> Path | None:
    """The sidecar of the checkpoint training just wrote at ``out`` (nothing when none was written),
    measured on the saved weights; a sample the finder cannot measure leaves a note, not an error."""
    if not out or not Path(out).is_file():
        return None
    from ..checkpoint import load_model
    try:
        return write_unit_stats(load_model(out), out, corpus_text)
    except UnitsError as err:   # e.g. a held-out part too short to measure: the checkpoint stands
        print(f"no unit statistics written: {err}", file=sys.stderr)
        return None


@dataclass(frozen=True)
class UnitStats:
    """Shipped statistics of one model: what the unit finder needs to rank, without the text.

    units: the U unit refs in column order; features: as stored (see :func:`unit_stats`)."""

    source: str
    chars: int
    units: list[UnitRef]
    features: dict

    @property
    def num_units(self) -> int:
        return len(self.units)

    def rank(self, feature: str, *, by: str = "auc", top: int = 20) -> FinderResult:
        """The ranking :func:`~rnnviz.units.rank_units` gave on the sample, from the stored
        numbers. Raises UnitsError for a feature it has no numbers for (a regular expression) or
        one the finder could not rank on the sample."""
        if by not in ("auc", "r"):
            raise UnitsError(f"rank by 'auc' or 'r', not {by!r}")
        entry = self.features.get(feature)
        if entry is None:
            raise UnitsError(f"{feature!r} needs the sample text, which is not on this machine.")
        if "error" in entry:
            raise UnitsError(str(entry["error"]))
        r = torch.tensor(entry["r"], dtype=torch.float64)
        auc = torch.tensor(entry["auc"], dtype=torch.float64)
        best = [UnitScore(self.units[j], float(r[j]), float(auc[j]))
                for j in order_units(r, auc, by)[:max(0, top)]]
        return FinderResult(feature, by, str(entry["label_rule"]), self.chars,
                            int(entry["n_positive"]), r, auc, best, 0.0)


def load_stats(model: CharRNN, checkpoint: str | os.PathLike,
               fingerprint: str | None = None) -> UnitStats | None:
    """The sidecar of ``checkpoint`` if it exists, is readable and was made from these weights;
    else None. ``fingerprint``: :func:`model_fingerprint` of ``model`` if the caller has it."""
    try:
        data = json.loads(stats_path(checkpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    units = unit_refs(model)
    if (not isinstance(data, dict) or data.get("format") != FORMAT or data.get("units") != len(units)
            or data.get("fingerprint") != (fingerprint or model_fingerprint(model))):
        return None
    feats = data.get("features")
    if not isinstance(feats, dict) or not all(
            isinstance(v, dict) and ("error" in v or (len(v.get("r", ())) == len(v.get("auc", ())) == len(units)))
            for v in feats.values()):
        return None
    sample = data.get("sample") if isinstance(data.get("sample"), dict) else {}
    return UnitStats(str(sample.get("source", "")), int(sample.get("chars", 0)), units, feats)
