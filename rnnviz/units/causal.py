"""The causal side of the scorecard (:mod:`rnnviz.units.scorecard`): mean-ablation of one unit and
the rise in loss it causes, split by where a feature is on.

Mean-ablation
    Unit ``layer{l}.{kind}[j]`` := its mean activation over the text, at every step, through the
    trace hooks of :mod:`rnnviz.interventions` (:func:`~rnnviz.interventions.set_unit` on that
    trace name: that layer runs step by step, the next step, the layers above and the output read
    the forced value). The baseline of layer l is the same text on the same stepped path with the
    hook that changes nothing (:func:`~rnnviz.interventions.keep`), computed once per layer, so
    each ablation costs one trace, and a unit that feeds nothing gives a delta of exactly 0.
    This is what :func:`rnnviz.interventions.ablate` computes (two traces per call).

Per-character delta
    delta_t = surprisal_ablated_t − surprisal_base_t, t = 0 … T−2, in nats: the change in the loss
    of predicting character t+1 from the state after character t (the alignment of
    ``Trace.surprisal``). The feature value at t belongs to that same state.

Split (:func:`split_means`)
    delta_loss = mean of delta_t over the t < T−1 where the feature is on; delta_loss_elsewhere =
    the mean over the others. Their difference is the **selective effect**.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..interventions import keep, set_unit
from ..model import CharRNN
from ..names import act_name
from ..trace import trace_ids
from .refs import UnitRef


def base_surprisal(model: CharRNN, ids: Tensor, layer: int) -> Tensor:
    """(T−1,) float64 surprisal of ``ids`` with layer ``layer`` on the stepped (hooked) path."""
    cache, _ = trace_ids(model, ids, gates=False, hooks={act_name(layer, "h"): keep})
    return cache["surprisal"].double()


def ablation_delta(model: CharRNN, ids: Tensor, unit: UnitRef, value: float, base: Tensor) -> Tensor:
    """(T−1,) float64 per-character delta of forcing ``unit`` := ``value`` at every step (module
    doc); ``base`` from :func:`base_surprisal` of the unit's layer."""
    cache, _ = trace_ids(model, ids, gates=False, hooks={unit.tensor_name: set_unit(unit.unit, float(value))})
    return cache["surprisal"].double() - base


def split_means(delta: Tensor, active: Tensor) -> tuple[Tensor, Tensor]:
    """(delta_loss, delta_loss_elsewhere): means of ``delta`` (K, T−1) or (T−1,) over the steps where
    ``active[:-1]`` is on / off; NaN for an empty side."""
    on = active[:delta.shape[-1]].to(delta.dtype)
    off = 1.0 - on
    n_on, n_off = float(on.sum()), float(off.sum())
    a = (delta * on).sum(-1) / n_on if n_on else torch.full(delta.shape[:-1], float("nan"), dtype=delta.dtype)
    b = (delta * off).sum(-1) / n_off if n_off else torch.full(delta.shape[:-1], float("nan"), dtype=delta.dtype)
    return a, b
