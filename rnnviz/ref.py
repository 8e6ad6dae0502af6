"""One identity for a loaded model: :class:`ModelRef` (its name and a content hash of its config and
weights). Every cache that holds a result computed from a model keys on it, so a checkpoint file
replaced under the same name (new weights) is never served from a cache filled by the old one.

    ref = model_ref(model, "timemachine-lstm")   # computed once per model object, then reused
    key = (ref, text)
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from dataclasses import dataclass

import torch

from .model import CharRNN


@dataclass(frozen=True)
class ModelRef:
    """A model's identity: ``name`` (a checkpoint name or upload key, for people) and ``digest`` (the
    first 16 hex digits of the sha256 of its config and every parameter's float32 bytes: equal
    digests mean equal models). Hashable and comparable; use it in cache keys as is."""

    name: str
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


def weights_digest(model: CharRNN) -> str:
    """Short sha256 of the config and every parameter's bytes (float32), as 16 hex digits."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


_DIGESTS: "weakref.WeakKeyDictionary[CharRNN, str]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def model_ref(model: CharRNN, name: str | None = None) -> ModelRef:
    """The :class:`ModelRef` of ``model`` (default name: ``model.name``). The digest is computed on
    the first call for this model object (~0.3 s for the largest model a checkpoint may hold) and
    remembered while the object lives; models are shared read-only, so it stays valid."""
    with _LOCK:
        digest = _DIGESTS.get(model)
    if digest is None:
        digest = weights_digest(model)
        with _LOCK:
            _DIGESTS[model] = digest
    return ModelRef(name if name is not None else str(getattr(model, "name", "model")), digest)
