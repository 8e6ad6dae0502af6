"""The largest model the checkpoint parser accepts, as a float16 file: what a hostile upload can
be (issue 15). Used by tests/test_heavy_models.py and tools/heavy_neighbour.py."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from rnnviz import CharRNN, ModelConfig, Vocab, build_model
from rnnviz.checkpoint import MAX_CHECKPOINT_BYTES, SCHEMA
from rnnviz.model import MAX_HIDDEN

TOKENS = tuple(Vocab.from_text("the time machine by h. g. wells").tokens)


def file_bytes(cfg: ModelConfig) -> int:
    """Bytes of a float16 checkpoint of ``cfg`` (tensors only; the header adds a few kB)."""
    with torch.device("meta"):
        return 2 * sum(t.numel() for t in CharRNN(cfg).state_dict().values())


def largest_hidden(cell: str, layers: int, tokens: tuple[str, ...] = TOKENS) -> int:
    """The largest h ≤ MAX_HIDDEN whose float16 checkpoint the parser accepts (file size cap)."""
    lo, hi = 1, MAX_HIDDEN
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if file_bytes(ModelConfig(cell, mid, layers, tokens)) <= MAX_CHECKPOINT_BYTES - 2**16:
            lo = mid
        else:
            hi = mid - 1
    return lo


def save_f16(model: CharRNN, path: Path) -> None:
    """Write ``model`` as a float16 rnnviz checkpoint (the smallest file for its size)."""
    meta = {"schema": SCHEMA, "config": model.config.to_dict(), "provenance": {"corpus": "none"}}
    tensors = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    path.write_bytes(st_save(tensors, metadata={"format": "pt", "rnnviz": json.dumps(meta)}))


def largest_checkpoint(cell: str, layers: int, path: Path, seed: int = 0) -> ModelConfig:
    """Write the largest accepted ``cell`` × ``layers`` model (random weights) to ``path``."""
    cfg = ModelConfig(cell, largest_hidden(cell, layers), layers, TOKENS)
    save_f16(build_model(cfg, seed=seed), path)
    return cfg
