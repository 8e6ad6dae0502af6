"""Dictionary features next to units: the SAEs shipped beside a checkpoint, each feature's
top-activating contexts, and the "units vs features" comparison of two scorecards.

Shipped SAEs (:func:`shipped_saes`): ``<dir>/<stem>.layer<l>.<state>.sae.safetensors`` beside
``<dir>/<stem>.safetensors`` (:func:`rnnviz.units.sae.sae_path`); their scorecard controls, made by
``python -m tools.sae_report``, in ``….sae.scorecard.json`` (:mod:`rnnviz.units.scorecard_cache`'s
format, read with :func:`~rnnviz.units.scorecard_cache.load_controls` on the SAE's path).

Top-activating contexts (:func:`top_contexts`): the k steps with the largest activation (> 0 only,
ties by position), each with ``width`` characters before and after.

Comparison (:func:`compare_verdicts`): per feature of the text, how many units and how many
dictionary features are ``causal`` / ``correlational``, and the best of each by effect.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

_SAE_FILE = re.compile(r"\.layer(\d+)\.([a-z]+)\.sae\.safetensors$")


def shipped_saes(checkpoint: str | os.PathLike) -> list[tuple[int, str, Path]]:
    """(layer, state, path) of every SAE file beside ``checkpoint`` (a .safetensors path), by layer,
    H_t first."""
    p = Path(checkpoint)
    stem = p.name.removesuffix(".safetensors")
    out = []
    for f in sorted(p.parent.glob(f"{glob_escape(stem)}.layer*.sae.safetensors")):
        m = _SAE_FILE.search(f.name)
        if m and f.name[:m.start()] == stem:
            out.append((int(m.group(1)), m.group(2), f))
    return sorted(out, key=lambda x: (x[0], x[1] != "h", x[1]))


def glob_escape(s: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", s)


@dataclass(frozen=True)
class Context:
    """Step ``t`` of a text, where a feature is ``value``: ``before`` + ``char`` + ``after``."""

    t: int
    value: float
    before: str
    char: str
    after: str


def top_contexts(values: Tensor, text: str, k: int = 8, width: int = 20) -> list[Context]:
    """The ``k`` steps of ``values`` (T,) with the largest values > 0, largest first (module doc)."""
    if values.dim() != 1 or values.numel() != len(text):
        raise ValueError(f"values has shape {tuple(values.shape)}; the text has {len(text)} characters")
    v = values.double()
    order = sorted(range(len(text)), key=lambda t: (-float(v[t]), t))
    return [Context(t, float(v[t]), text[max(0, t - width):t], text[t], text[t + 1:t + 1 + width])
            for t in order[:k] if float(v[t]) > 0]


def _best(g: pd.DataFrame, label) -> str:
    if not len(g):
        return "—"
    r = g.sort_values("effect", ascending=False, kind="stable").iloc[0]
    stat = f"AUC {r.stat:.3f}" if r.kind == "auc" else f"r {r.stat:+.3f}"
    return f"{label(r)} ({stat}, {r.verdict})"


def _p95(g: pd.DataFrame) -> str:
    return f"{float(g.random_init_p95.iloc[0]):.3f}" if len(g) else "—"


def compare_verdicts(units: pd.DataFrame, features: pd.DataFrame, unit_label, feature_label) -> pd.DataFrame:
    """One row per feature of ``features`` (a scorecard on a basis, :func:`rnnviz.units.scorecard`)
    next to ``units`` (the units' scorecard on the same text, any scope): counts of causal and
    correlational of each, each one's random-init control (the 95th percentile its effect must beat) and
    the best of each by effect. ``*_label``: row → name."""
    rows = []
    for name, fg in features.groupby("feature", sort=False):
        ug = units[units.feature == name]
        rows.append({"feature": name,
                     "units causal": int((ug.verdict == "causal").sum()),
                     "units correlational": int((ug.verdict == "correlational").sum()),
                     "features causal": int((fg.verdict == "causal").sum()),
                     "features correlational": int((fg.verdict == "correlational").sum()),
                     "units control p95": _p95(ug), "features control p95": _p95(fg),
                     "best unit": _best(ug, unit_label), "best feature": _best(fg, feature_label)})
    return pd.DataFrame(rows)


def feature_activations(sae, cache: dict[str, Tensor], layer: int, state: str) -> Tensor:
    """(T, F) activations of the SAE's features on a trace cache's ``layer{l}.{state}``."""
    from ..names import act_name

    return sae.encode(torch.as_tensor(cache[act_name(layer, state)]).float())


def feature_values(sae, cache: dict[str, Tensor], layer: int, state: str, index: int) -> Tensor:
    """(T,) activation of feature ``index`` alone on a trace cache's ``layer{l}.{state}``:
    a_f(h_t) = ReLU(W_enc[f] · (h_t − b_dec) + b_enc[f]), the f-th column of :meth:`SAE.encode`
    without computing the others (a pinned feature followed on every view)."""
    from ..names import act_name
    from .sae import SAEError

    if not 0 <= int(index) < sae.n_features:
        raise SAEError(f"Feature {index} is not among 0…{sae.n_features - 1}.")
    x = torch.as_tensor(cache[act_name(layer, state)]).float()
    if x.dim() != 2 or x.shape[1] != sae.dim:
        raise SAEError(f"The SAE reads vectors of size {sae.dim}; got {tuple(x.shape)}.")
    return torch.relu((x - sae.b_dec) @ sae.W_enc[int(index)] + sae.b_enc[int(index)])
