"""Scorecard controls shipped beside a checkpoint, so a scorecard on its held-out slice is fast.

The random-init control (untrained models traced and ranked) and the random-draw ablations are the
slow, feature-independent-of-the-model-being-asked parts of :func:`rnnviz.units.scorecard`. For a
shipped checkpoint they are computed once on its **scorecard slice** (:func:`scorecard_sample`:
the last :data:`SCORECARD_CHARS` characters of its held-out validation part, after its
preprocessing, from a line start; :func:`rnnviz.units.training_sample`) for every built-in feature,
and stored in ``<dir>/<stem>.scorecard.json`` next to ``<stem>.safetensors`` (:func:`controls_path`).

The file is the ``attrs["controls"]`` dict of that scorecard (settings: weights' fingerprint, the
slice's sha256 and length, controls, draws, seed, min_shift, scope; per feature: its kind,
random_init_p95 and the random draws' selective effects) plus ``"sample"`` (where the slice came
from) and ``"verdicts"`` (feature → {unit: verdict} of the pairs that beat the controls). :func:`rnnviz.units.scorecard` uses it only when every setting matches, so a stale or
foreign file is ignored, never wrong. ``python -m tools.scorecard_report`` writes them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..model import CharRNN
from .sample import training_sample

log = logging.getLogger(__name__)

#: Characters of held-out text a shipped checkpoint's scorecard is computed on.
SCORECARD_CHARS = 6_000
#: Units ablated per feature on the page (largest effect first among those beating the controls).
PAGE_MAX_CAUSAL = 3


def controls_path(checkpoint: str | os.PathLike) -> Path:
    """``<dir>/<stem>.scorecard.json`` for ``<dir>/<stem>.safetensors``."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".scorecard.json")


def scorecard_sample(model: CharRNN, full_text: str | None = None,
                     corpora_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(the scorecard slice, where it came from); see the module docstring. ``corpora_dir``: where
    the corpus is (default: rnnviz.corpora's). Raises UnitsError / CorpusMissing as
    :func:`rnnviz.units.training_sample` does."""
    return training_sample(model, SCORECARD_CHARS, full_text=full_text, corpora_dir=corpora_dir)


def verdicts_of(df) -> dict[str, dict[str, str]]:
    """Feature → {unit name: verdict} of a scorecard's pairs that beat the controls."""
    out: dict[str, dict[str, str]] = {}
    for r in df[df.verdict != "chance"].itertuples():
        out.setdefault(r.feature, {})[f"layer{r.layer}.{r.state}[{r.unit}]"] = r.verdict
    return out


def write_controls(controls: dict, checkpoint: str | os.PathLike, source: str = "",
                   verdicts: dict | None = None) -> Path:
    """Write a scorecard's ``attrs["controls"]`` (the slice's ``source``, and ``verdicts`` from
    :func:`verdicts_of`, which the Hidden states view names units by) beside ``checkpoint``."""
    path = controls_path(checkpoint)
    tmp = path.with_name(path.name + ".tmp")
    data = {**controls, "sample": source, "verdicts": verdicts or {}}
    tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_controls(checkpoint: str | os.PathLike) -> dict | None:
    """The stored controls of ``checkpoint``, or None when there is no readable file (whether they
    fit a model and text is :func:`rnnviz.units.scorecard`'s check)."""
    try:
        data = json.loads(controls_path(checkpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
