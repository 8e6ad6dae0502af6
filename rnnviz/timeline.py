"""Training timeline: snapshots of a model's weights during training, stored beside its checkpoint.

``<name>.timeline`` sits next to ``<name>.safetensors`` (not ``*.safetensors``, so it is never
listed as a checkpoint). It is a safetensors file, validated by the same header checks as a
checkpoint (:func:`rnnviz.checkpoint.parse_header`), whose ``rnnviz`` metadata is::

    {"schema": "rnnviz.timeline/1", "config": {...the checkpoint's config...},
     "steps": [0, 1, 2, ..., best_step], "val_losses": [float | null, ...],
     "checkpoint_digest": "<rnnviz.ref.weights_digest of the checkpoint>",
     "encoding": "int8-row-delta"}

The last snapshot *is* the checkpoint (its weights are not stored twice). Every earlier snapshot
``i`` stores, for each parameter ``p`` of the checkpoint, ``Δ = W_i − W_final`` quantised per row:
``i.p.q`` (int8, the parameter's shape) and ``i.p.scale`` (float16, one per row; a 1-D parameter
is one row), decoded as ``W_final + q · scale``. The error per element is at most half a step,
``max|Δ_row| / 254`` (plus float16 rounding of the scale), and it shrinks as training approaches
the end. One byte per weight per snapshot: 16 snapshots of a 1 × 256 LSTM on 28 characters
(300 k weights) take about 4.5 MB.

A timeline whose digest does not match the checkpoint beside it (the checkpoint was replaced) is
refused, like every other problem, with :class:`~rnnviz.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .checkpoint import (CheckpointError, _config_from_meta, _read_bytes, load_model, parse_header,
                         resolve_checkpoint)
from .model import CharRNN, ModelConfig
from .ref import weights_digest

TIMELINE_SCHEMA = "rnnviz.timeline/1"
SUFFIX = ".timeline"
ENCODING = "int8-row-delta"
#: Most snapshots a timeline may hold (a file claiming more is refused).
MAX_SNAPSHOTS = 64
_DTYPES = {"I8": (torch.int8, 1), "F16": (torch.float16, 2)}
_NOT_TIMELINE = "This file is not a valid rnnviz training timeline"


class Snapshot(NamedTuple):
    """One point of a timeline: ``step`` (optimiser steps taken) and ``model`` (eval mode, float32,
    ``requires_grad`` off; ``model.provenance`` adds ``timeline_step`` and ``timeline_val_loss``)."""

    step: int
    model: CharRNN


def timeline_path(checkpoint: str | os.PathLike) -> Path:
    """``x.safetensors`` → ``x.timeline`` (the same folder)."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1) if t.dim() < 2 else t


def encode_delta(snapshot: torch.Tensor, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 q with ``snapshot``'s shape, float16 per-row scale) with ``final + q·scale ≈ snapshot``."""
    delta = _rows(snapshot.detach().float().cpu() - final.detach().float().cpu())
    scale = (delta.abs().amax(dim=1) / 127.0).to(torch.float16).float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(delta / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(snapshot.shape), scale.to(torch.float16)


def decode_delta(q: torch.Tensor, scale: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_delta`: ``final + q·scale`` as float32."""
    rows = _rows(q).float() * scale.float()[:, None]
    return final.float() + rows.reshape(final.shape)


def timeline_bytes(checkpoint: CharRNN, snapshots: list[tuple[int, dict[str, torch.Tensor]]],
                   val_losses: list[float | None] | None = None) -> bytes:
    """The bytes of a timeline whose earlier snapshots are ``snapshots`` ((step, state dict) in
    training order, each step < the final one) and whose last is ``checkpoint`` at step
    ``checkpoint.provenance["steps"]`` (its best step). ``val_losses``: one per snapshot, the last
    included, or None."""
    final = {k: v.detach().float().cpu() for k, v in checkpoint.state_dict().items()}
    final_step = int(getattr(checkpoint, "provenance", {}).get("steps", 0))
    steps = [int(s) for s, _ in snapshots] + [final_step]
    tensors = {}
    for i, (_, state) in enumerate(snapshots):
        for key, w_final in final.items():
            q, scale = encode_delta(state[key], w_final)
            tensors[f"{i}.{key}.q"], tensors[f"{i}.{key}.scale"] = q.contiguous(), scale.contiguous()
    losses = list(val_losses) if val_losses is not None else [None] * len(steps)
    meta = {"schema": TIMELINE_SCHEMA, "config": checkpoint.config.to_dict(), "steps": steps,
            "val_losses": losses, "checkpoint_digest": weights_digest(checkpoint), "encoding": ENCODING}
    _check_meta(meta)
    return st_save(tensors, metadata={"format": "pt", "rnnviz": json.dumps(meta)})


def save_timeline(checkpoint: CharRNN, snapshots: list[tuple[int, dict[str, torch.Tensor]]],
                  path: str | os.PathLike, val_losses: list[float | None] | None = None) -> Path:
    """Write :func:`timeline_bytes` to ``path`` atomically; returns the path."""
    path = Path(path)
    data = timeline_bytes(checkpoint, snapshots, val_losses)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _check_meta(meta: dict) -> None:
    steps, losses = meta.get("steps"), meta.get("val_losses")
    if (not isinstance(steps, list) or not 1 <= len(steps) <= MAX_SNAPSHOTS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 10**12 for s in steps)
            or any(a >= b for a, b in zip(steps, steps[1:]))):
        raise CheckpointError(f"{_NOT_TIMELINE}: its steps must be 1..{MAX_SNAPSHOTS} increasing "
                              "non-negative integers.")
    if (not isinstance(losses, list) or len(losses) != len(steps)
            or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v)) for v in losses)):
        raise CheckpointError(f"{_NOT_TIMELINE}: its val_losses must be one finite number (or null) per step.")
    if meta.get("encoding") != ENCODING or not isinstance(meta.get("checkpoint_digest"), str):
        raise CheckpointError(f"{_NOT_TIMELINE}: unknown encoding or no checkpoint digest.")


def _expected_entries(final: dict[str, torch.Tensor], n: int) -> dict[str, tuple[str, list[int]]]:
    out = {}
    for i in range(n):
        for key, w in final.items():
            out[f"{i}.{key}.q"] = ("I8", list(w.shape))
            out[f"{i}.{key}.scale"] = ("F16", [_rows(w).shape[0]])
    return out


def parse_timeline(data: bytes, checkpoint: CharRNN) -> tuple[dict, dict[str, torch.Tensor]]:
    """Validate timeline ``data`` against ``checkpoint``; returns (metadata, tensors).
    Raises CheckpointError saying what is wrong."""
    header, meta = parse_header(data, schema=TIMELINE_SCHEMA, dtypes=_DTYPES)
    _check_meta(meta)
    config: ModelConfig = _config_from_meta(meta)
    if config != checkpoint.config:
        raise CheckpointError(f"{_NOT_TIMELINE}: its config does not match the checkpoint's.")
    if meta["checkpoint_digest"] != weights_digest(checkpoint):
        raise CheckpointError("This timeline belongs to other weights than the checkpoint beside it "
                              "(the checkpoint was replaced?): retrain to get a matching timeline.")
    final = checkpoint.state_dict()
    expected = _expected_entries(final, len(meta["steps"]) - 1)
    found = {k: (v["dtype"], list(v["shape"])) for k, v in header.items()}
    if found != expected:
        bad = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise CheckpointError(f"{_NOT_TIMELINE}: its tensors do not match its steps and config "
                              f"(first mismatch: {bad[:3]}).")
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors' own checks: report, never crash
        raise CheckpointError(f"{_NOT_TIMELINE}: safetensors refused it ({err}).") from None
    for key, t in tensors.items():
        if key.endswith(".scale") and not (torch.isfinite(t).all() and (t >= 0).all()):
            raise CheckpointError(f"{_NOT_TIMELINE}: scale {key!r} is negative, NaN or infinite.")
    return meta, tensors


def _snapshot(checkpoint: CharRNN, state: dict | None, step: int, loss) -> Snapshot:
    model = CharRNN(checkpoint.config)
    model.load_state_dict(state if state is not None else checkpoint.state_dict())
    model.eval().requires_grad_(False)
    model.name = checkpoint.name
    model.provenance = {**checkpoint.provenance, "timeline_step": step, "timeline_val_loss": loss}
    return Snapshot(step, model)


def _resolve(name_or_path: str | os.PathLike, directory: str | os.PathLike | None) -> tuple[Path, Path]:
    """(checkpoint path, timeline path) for a shipped name (looked up in ``directory``, see
    :func:`rnnviz.checkpoint.resolve_checkpoint`), a checkpoint path or a timeline path."""
    s = os.fspath(name_or_path)
    if s.endswith(SUFFIX):
        tl = Path(s)
        ckpt = tl.with_name(tl.name.removesuffix(SUFFIX) + ".safetensors")
    else:
        ckpt = resolve_checkpoint(name_or_path, directory)
        tl = timeline_path(ckpt)
    if not tl.is_file():
        raise CheckpointError(f"No training timeline beside {ckpt.name}: retrain it with --timeline "
                              "to record one.")
    if not ckpt.is_file():
        raise CheckpointError(f"The timeline {tl.name} has no checkpoint beside it ({ckpt.name}).")
    return ckpt, tl


def has_timeline(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> bool:
    """Whether a timeline file sits beside this checkpoint (not validated)."""
    try:
        _resolve(name_or_path, directory)
    except CheckpointError:
        return False
    return True


def load_timeline(name_or_path: str | os.PathLike,
                  directory: str | os.PathLike | None = None) -> list[Snapshot]:
    """The training timeline of a checkpoint: a list of ``(step, model)`` (:class:`Snapshot`) in
    training order, the last being the checkpoint itself. ``name_or_path``: a shipped name, a
    checkpoint path (``x.safetensors``) or the timeline's path (``x.timeline``); ``directory``: where
    shipped names are looked up (default: the repository's ``checkpoints/``). Every model is in
    eval mode, float32, ``requires_grad`` off. Raises CheckpointError on any problem."""
    ckpt_path, tl_path = _resolve(name_or_path, directory)
    checkpoint = load_model(ckpt_path)
    if directory is not None and ckpt_path.parent.resolve() == Path(directory).resolve():
        checkpoint.name = ckpt_path.stem
    meta, tensors = parse_timeline(_read_bytes(tl_path), checkpoint)
    final = checkpoint.state_dict()
    steps, losses = meta["steps"], meta["val_losses"]
    out = []
    for i, step in enumerate(steps[:-1]):
        state = {k: decode_delta(tensors[f"{i}.{k}.q"], tensors[f"{i}.{k}.scale"], w)
                 for k, w in final.items()}
        out.append(_snapshot(checkpoint, state, step, losses[i]))
    out.append(_snapshot(checkpoint, None, steps[-1], losses[-1]))
    return out
