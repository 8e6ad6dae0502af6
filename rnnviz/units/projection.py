"""Projection: PCA of a state trajectory (:func:`pca`, :func:`project_trace`); see :mod:`rnnviz.units`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..trace import Trace
from .refs import UnitsError


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
    """Project ``states`` (T, h) on its top-k principal components (torch.linalg.svd, centred).
    Steps holding inf/NaN (an overflowed model) are left out."""
    if states.dim() != 2:
        raise UnitsError(f"PCA needs a (T, h) matrix, got shape {tuple(states.shape)}")
    finite = torch.isfinite(states).all(dim=1)
    if not bool(finite.all()):           # an overflowed model: fit on the finite steps, NaN elsewhere
        proj = pca(states[finite], k)
        coords = torch.full((states.shape[0], proj.coords.shape[1]), float("nan"), dtype=torch.float64)
        coords[finite] = proj.coords
        return Projection(coords, proj.explained, proj.components, proj.mean, proj.singular_values)
    T, H = states.shape
    if T < 2:
        raise UnitsError("PCA needs at least two steps with finite states: type a longer text "
                         "(an overflowed model has none after its overflow).")
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
