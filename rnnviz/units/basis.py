"""What the scorecard scores: hidden units (the default) or the dictionary features of an SAE.

:func:`rnnviz.units.scorecard` asks its ``basis`` for four things: the refs in scope (columns), the
(T, U) matrix of their activations from a trace, the random-init control's pooled effects and the
per-character rise in loss of mean-ablating one column. :class:`UnitBasis` is what it always did
(:mod:`rnnviz.units.controls`, :mod:`rnnviz.units.causal`); :class:`SAEBasis` does the same for the
features of one :class:`~rnnviz.units.sae.SAE` on ``layer{l}.{state}``:

Activations
    a_f(h_t) = ReLU(W_enc (h_t − b_dec) + b_enc)_f, the SAE's encoder on the traced state.

Random-init control (honest version: the whole method, run on chance)
    For every control seed, an untrained model of the same config (:func:`rnnviz.model.build_model`)
    is traced over the same text and a **fresh SAE with the same recipe** (F, L1, batch, learning
    rate; ``control_steps`` Adam steps, seed = the control seed) is trained on those untrained
    states; the effects of all its features are pooled. So "beats the random-init control" means the
    feature tracks the feature better than 95 % of what training an SAE on a random network's states
    gives. The control SAEs are fitted on the scored text itself (which favours the control, making
    it stricter) but with fewer steps than the shipped SAE (which can favour the feature); both are
    stated beside the figures.

Mean-ablation of feature f (:func:`feature_ablation_hook`)
    At every step, h ← h − a_f(h)·d_f + ā_f·d_f, d_f the unit-norm decoder column and ā_f the mean
    of a_f over the text: the feature's contribution to the reconstruction is replaced by its mean,
    and everything the SAE does not explain (the reconstruction error) is left as it was. A hook on
    the trace name, as for a unit (:mod:`rnnviz.units.causal`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import CharRNN, build_model
from ..names import act_name
from ..trace import Hook, trace_ids
from . import causal as C
from . import controls as K
from .refs import UnitRef
from .sae import SAE, SAEError, train_sae

#: Adam steps of each random-init control SAE (module docstring).
CONTROL_STEPS = 300


def feature_name(layer: int, state: str, index: int) -> str:
    """The one name of a dictionary feature on every view: ``"L0 feat[17]"`` for an SAE on H_t,
    ``"L0 featc[17]"`` on C_t. Unlike a unit's name (:func:`rnnviz.units.names.unit_name`,
    ``"L0 f[17]"`` is forget-gate unit 17), it cannot be read as a state or a gate."""
    return f"L{int(layer)} feat{'' if state == 'h' else state}[{int(index)}]"


#: A feature's name; ``f``/``fc`` is the form links carried before features were named ``feat``.
_FEATURE_NAME = re.compile(r"L(0|[1-9][0-9]{0,2}) (feat|f)([a-z]?)\[(0|[1-9][0-9]{0,5})\]")


def parse_feature_name(text) -> tuple[int, str, int] | None:
    """(layer, state, index) of a feature name (:func:`feature_name`'s form: "L0 feat[17]" → (0, "h", 17),
    "L0 featc[17]" → (0, "c", 17); the old form of links, "L0 f[17]" / "L0 fc[17]", is read the
    same); None for anything else (not checked against an SAE)."""
    m = _FEATURE_NAME.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or m.group(3) == "h":                   # "feath" is not a name: H_t's features are "feat"
        return None
    return int(m.group(1)), m.group(3) or "h", int(m.group(4))


@dataclass(frozen=True, order=True)
class FeatureRef:
    """Feature ``unit`` of the SAE on ``layer{layer}.{state}``; ``kind`` is ``"<state>:sae"`` (the
    scorecard's ``state`` column)."""

    layer: int
    kind: str
    unit: int

    @property
    def state(self) -> str:
        return self.kind.split(":", 1)[0]

    @property
    def tensor_name(self) -> str:
        """The trace name of the state the SAE reads (and the ablation hooks)."""
        return act_name(self.layer, self.state)

    @property
    def name(self) -> str:
        return f"{self.tensor_name}:sae[{self.unit}]"

    @property
    def label(self) -> str:
        return feature_name(self.layer, self.state, self.unit)


class UnitBasis:
    """Hidden units (:func:`rnnviz.units.scorecard.scope_units`)."""

    key = None

    def __init__(self, units: list[UnitRef]):
        self.units = units

    def matrix(self, model: CharRNN, cache: dict[str, Tensor]) -> Tensor:
        return K.scope_matrix(model, cache, self.units)

    def control_effects(self, model, ids, feats, seeds) -> dict[str, Tensor]:
        return K.random_init_effects(model, ids, feats, self.units, seeds)

    def ablation_delta(self, model, ids, ref, mean: float, base: Tensor) -> Tensor:
        return C.ablation_delta(model, ids, ref, mean, base)


def feature_ablation_hook(sae: SAE, f: int, mean: float) -> Hook:
    """The hook h ← h − a_f(h)·d_f + mean·d_f (module docstring)."""
    d = sae.direction(f)

    def hook(v: Tensor, t: int) -> Tensor:
        a = sae.encode(v)[f]
        return v - (a - mean) * d.to(v.dtype)
    return hook


def sae_digest(sae: SAE) -> str:
    """sha256 of the SAE's tensors (a cache key)."""
    h = hashlib.sha256()
    for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


class SAEBasis:
    """The dictionary features of ``sae`` on ``layer{layer}.{state}`` of a model (module docstring)."""

    def __init__(self, sae: SAE, layer: int, state: str = "h", control_steps: int = CONTROL_STEPS):
        if not isinstance(control_steps, int) or control_steps < 1:
            raise SAEError(f"control_steps must be an integer ≥ 1, got {control_steps!r}")
        self.sae, self.layer, self.state, self.control_steps = sae, int(layer), state, control_steps
        self.units = [FeatureRef(self.layer, f"{state}:sae", j) for j in range(sae.n_features)]
        self.key = {"sae_sha256": sae_digest(sae), "layer": self.layer, "state": state,
                    "control_steps": control_steps}

    def check(self, model: CharRNN) -> None:
        """Raises SAEError when the SAE cannot read this model's state."""
        if not 0 <= self.layer < model.config.num_layers or self.state not in model.spec.state_kinds:
            raise SAEError(f"The model has no state {act_name(self.layer, self.state)!r}.")
        if self.sae.dim != model.config.hidden_size:
            raise SAEError(f"The SAE reads vectors of size {self.sae.dim}; the model's states have "
                           f"{model.config.hidden_size}.")

    def matrix(self, model: CharRNN, cache: dict[str, Tensor]) -> Tensor:
        return self.sae.encode(cache[act_name(self.layer, self.state)].float())

    def _recipe(self) -> dict:
        m = self.sae.meta
        return {"l1": float(m.get("l1", 0.05)), "batch": int(m.get("batch", 512)), "lr": float(m.get("lr", 1e-3)),
                "l1_warmup": float(m.get("l1_warmup", 0.0)), "lr_decay": float(m.get("lr_decay", 0.0))}

    @torch.inference_mode(False)
    def control_effects(self, model: CharRNN, ids: Tensor, feats: Sequence[K.Feature],
                        seeds: Sequence[int]) -> dict[str, Tensor]:
        """Feature name → pooled effects of the features of SAEs trained on untrained models."""
        pooled: dict[str, list[Tensor]] = {f.name: [] for f in feats}
        for s in seeds:
            fresh = build_model(model.config, seed=s)
            with torch.inference_mode():
                cache, _ = trace_ids(fresh, ids, gates=fresh.has_cell_state)
            x = cache[act_name(self.layer, self.state)].float().clone()
            ctrl = train_sae(x, self.sae.n_features, steps=self.control_steps, seed=s, **self._recipe())
            mat = K.UnitMatrix(ctrl.encode(x).double())
            for f in feats:
                pooled[f.name].append(K.effect(K.observed(mat, f), f.kind))
        return {k: torch.cat(v) for k, v in pooled.items()}

    def ablation_delta(self, model: CharRNN, ids: Tensor, ref: FeatureRef, mean: float, base: Tensor) -> Tensor:
        """(T−1,) per-character rise in surprisal of mean-ablating feature ``ref`` at every step."""
        hook = feature_ablation_hook(self.sae, ref.unit, float(mean))
        cache, _ = trace_ids(model, ids, gates=False, hooks={ref.tensor_name: hook})
        return cache["surprisal"].double() - base
