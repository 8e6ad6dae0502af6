"""Dictionary features: a sparse autoencoder (SAE) on one state (H_t or C_t) of one layer.

Shapes: N activation vectors x ∈ R^d (d = hidden size), F dictionary features.

Model
    a(x) = ReLU(W_enc (x − b_dec) + b_enc)       feature activations (F,), all ≥ 0
    x̂(a) = W_dec a + b_dec                       reconstruction, W_dec (d, F) with unit-norm columns
    So x̂ = b_dec + Σ_f a_f d_f: feature f contributes a_f·d_f, d_f the f-th column of W_dec.

Training (:func:`train_sae`)
    The inputs are divided by one scalar s (the root-mean-square of the centred inputs per dimension)
    so one L1 coefficient means the same for states of any scale; the loss per example is
    ‖x/s − x̂‖² / d + λ_k Σ_f a_f (mean over the batch), minimised with Adam on random batches; after
    every step the columns of W_dec are renormalised to unit length (so the L1 term cannot be
    dodged by shrinking a and growing d_f). Schedules on the progress p ∈ [0, 1] (steps done / K, or
    with a deadline the time used / the time allowed, whichever is further): the L1 coefficient
    rises linearly from 0 to λ while p < ``l1_warmup`` (features form before sparsity prunes them),
    and the learning rate falls linearly to 0 over the last ``lr_decay`` of p (so a run cut by its
    deadline still ends with the decay, not in mid-flight). Initialisation: W_dec random unit columns,
    W_enc = W_decᵀ, b_enc = 0, b_dec = the mean input. At the end s is folded back exactly
    (b_dec ← s·b_dec, b_enc ← s·b_enc, activations in the input's units), so the stored SAE is the
    formula above on raw states. Every random number comes from one ``torch.Generator(seed)``.

Measures on held-out activations
    :func:`explained_variance` (R²) = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the held-out mean;
    :func:`dead_fraction` = the fraction of features whose activation is 0 on every held-out vector;
    :func:`mean_l0` = the mean number of features > 0 per vector.

Files (:func:`save_sae` / :func:`load_sae`): ``<dir>/<checkpoint>.<layer>.<state>.sae.safetensors``
(W_enc, b_enc, W_dec, b_dec, float32) beside the checkpoint, and ``….sae.json`` with the settings,
the provenance (weights' fingerprint, training text) and the measured figures. ``python -m
rnnviz.units.sae_train`` trains and writes them.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

FORMAT = "rnnviz.sae/1"
_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


class SAEError(ValueError):
    """An SAE cannot be trained, loaded or applied with these inputs; the message says why."""


@dataclass
class SAE:
    """A trained sparse autoencoder (module docstring). W_enc (F, d), b_enc (F,), W_dec (d, F),
    b_dec (d,), float32. ``meta``: the settings and figures stored beside it (a JSON-ready dict)."""

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    meta: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def dim(self) -> int:
        return int(self.W_enc.shape[1])

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() not in (1, 2) or x.shape[-1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise SAEError(f"The SAE reads vectors of size {self.dim}; got {shape}.")
        return x

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations (…, F) of states x (…, d)."""
        x = self._check(x)
        return torch.relu((x.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc.T + self.b_enc).to(x.dtype)

    def decode(self, a: Tensor) -> Tensor:
        """Reconstruction (…, d) of feature activations a (…, F)."""
        return (a.to(self.W_dec.dtype) @ self.W_dec.T + self.b_dec).to(a.dtype)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def direction(self, f: int) -> Tensor:
        """d_f (d,): the unit-norm decoder column of feature f."""
        if not 0 <= int(f) < self.n_features:
            raise SAEError(f"Feature {f} is not among 0…{self.n_features - 1}.")
        return self.W_dec[:, int(f)]


def explained_variance(x: Tensor, x_hat: Tensor) -> float:
    """R² = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over the rows of x (N, d); x̄ the mean row."""
    x, x_hat = x.double(), x_hat.double()
    sst = float(((x - x.mean(0)) ** 2).sum())
    if sst == 0.0:
        raise SAEError("The activations are constant, so the explained variance is undefined.")
    return 1.0 - float(((x - x_hat) ** 2).sum()) / sst


def dead_fraction(acts: Tensor) -> float:
    """Fraction of features (columns of acts (N, F)) that are 0 on every row."""
    return float((acts.amax(0) <= 0).double().mean())


def mean_l0(acts: Tensor) -> float:
    """Mean number of features > 0 per row of acts (N, F)."""
    return float((acts > 0).double().sum(1).mean())


def _check_training(x: Tensor, n_features: int, l1: float, steps: int, batch: int, lr: float) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise SAEError("Training needs activations as a (N, d) tensor with N ≥ 2 rows.")
    if not bool(torch.isfinite(x).all()):
        raise SAEError("The activations contain values that are not finite numbers.")
    for name, v in (("n_features", n_features), ("steps", steps), ("batch", batch)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SAEError(f"{name} must be an integer ≥ 1, got {v!r}")
    if not (isinstance(l1, (int, float)) and math.isfinite(l1) and l1 >= 0):
        raise SAEError(f"l1 must be a number ≥ 0, got {l1!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SAEError(f"lr must be a number > 0, got {lr!r}")


def _init(x: Tensor, n_features: int, gen: torch.Generator) -> list[Tensor]:
    d = x.shape[1]
    W_dec = torch.randn(d, n_features, generator=gen, dtype=torch.float32)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    return [W_dec.T.clone(), torch.zeros(n_features), W_dec, x.mean(0).float().clone()]


def _progress(done: int, steps: int, start: float, deadline: float | None) -> float:
    """How far training is, in [0, 1]: steps done / steps, or the time used / the time allowed."""
    p = done / steps
    if deadline is not None:
        p = max(p, (time.monotonic() - start) / max(deadline - start, 1e-9))
    return min(p, 1.0)


def train_sae(x: Tensor, n_features: int, *, l1: float = 0.05, steps: int = 3000, batch: int = 512,
              lr: float = 1e-3, seed: int = 0, deadline: float | None = None, l1_warmup: float = 0.0,
              lr_decay: float = 0.0) -> SAE:
    """An SAE fitted to activations x (N, d) (module docstring). ``deadline``: a time.monotonic()
    value after which training stops early (``meta["steps_done"]`` says how far it got).
    Deterministic for a seed (on one thread, without a deadline: the schedules then follow the
    clock). Raises SAEError for bad input or settings."""
    _check_training(x, n_features, l1, steps, batch, lr)
    for name, v in (("l1_warmup", l1_warmup), ("lr_decay", lr_decay)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
            raise SAEError(f"{name} must be a fraction of the training in [0, 1], got {v!r}")
    x = x.float()
    scale = float(((x - x.mean(0)) ** 2).mean().sqrt())
    if scale == 0.0:
        raise SAEError("The activations are constant: there is nothing to encode.")
    xs = x / scale
    gen = torch.Generator().manual_seed(int(seed))
    params = [p.requires_grad_() for p in _init(xs, n_features, gen)]
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=lr)
    start, done = time.monotonic(), 0
    with torch.enable_grad():
        for done in range(1, steps + 1):
            rows = torch.randint(0, xs.shape[0], (min(batch, xs.shape[0]),), generator=gen)
            xb = xs[rows]
            a = torch.relu((xb - b_dec) @ W_enc.T + b_enc)
            err = ((a @ W_dec.T + b_dec - xb) ** 2).sum(1).mean() / xs.shape[1]
            p = _progress(done - 1, steps, start, deadline)
            loss = err + l1 * (min(1.0, p / l1_warmup) if l1_warmup else 1.0) * a.sum(1).mean()
            opt.param_groups[0]["lr"] = lr * (min(1.0, (1.0 - p) / lr_decay) if lr_decay else 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)
            if _progress(done, steps, start, deadline) >= 1.0:
                break
    meta = {"format": FORMAT, "n_features": n_features, "dim": int(x.shape[1]), "l1": float(l1),
            "steps": steps, "steps_done": done, "l1_warmup": float(l1_warmup), "lr_decay": float(lr_decay),
            "batch": batch, "lr": float(lr), "seed": int(seed),
            "scale": scale, "train_vectors": int(x.shape[0])}
    return SAE(W_enc.detach().clone(), b_enc.detach() * scale, W_dec.detach().clone(),
               b_dec.detach() * scale, meta)


def measure(sae: SAE, x: Tensor) -> dict[str, float]:
    """R², dead fraction and mean L0 of ``sae`` on activations x (N, d) (module docstring)."""
    acts = sae.encode(x.float())
    return {"r2": explained_variance(x, sae.decode(acts)), "dead_fraction": dead_fraction(acts),
            "mean_l0": mean_l0(acts), "vectors": int(x.shape[0])}


def sae_path(checkpoint: str | os.PathLike, layer: int, state: str) -> Path:
    """``<dir>/<stem>.layer<l>.<state>.sae.safetensors`` for ``<dir>/<stem>.safetensors``."""
    p = Path(checkpoint)
    return p.with_name(f"{p.name.removesuffix('.safetensors')}.layer{int(layer)}.{state}.sae.safetensors")


def save_sae(sae: SAE, path: str | os.PathLike) -> Path:
    """Write the tensors to ``path`` and ``meta`` to the same name with ``.json`` for ``.safetensors``."""
    path = Path(path)
    save_file({k: getattr(sae, k).float().contiguous() for k in _TENSORS}, str(path),
              metadata={"format": FORMAT})
    meta_path = path.with_name(path.name.removesuffix(".safetensors") + ".json")
    meta_path.write_text(json.dumps(sae.meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(path, 0o644)            # safetensors writes owner-only; a shipped file is readable by all
    return path


def load_sae(path: str | os.PathLike) -> SAE:
    """The SAE stored at ``path`` (and its ``.json``). Raises SAEError for a missing or bad file."""
    path = Path(path)
    meta_path = path.with_name(path.name.removesuffix(".safetensors") + ".json")
    try:
        t = load_file(str(path))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SAEError(f"No readable SAE at {path.name}: {err}") from None
    if set(t) != set(_TENSORS) or not isinstance(meta, dict):
        raise SAEError(f"{path.name} is not an rnnviz SAE (tensors {sorted(t)}).")
    F, d = t["W_enc"].shape
    if t["W_dec"].shape != (d, F) or t["b_enc"].shape != (F,) or t["b_dec"].shape != (d,):
        raise SAEError(f"{path.name}: the tensors' shapes do not fit together.")
    if not all(bool(torch.isfinite(v).all()) for v in t.values()):
        raise SAEError(f"{path.name}: the tensors contain values that are not finite numbers.")
    return SAE(t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], meta)
