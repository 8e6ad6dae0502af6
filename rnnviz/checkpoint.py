"""Checkpoints: one ``.safetensors`` file per model, validated before any tensor is trusted.

File layout (standard safetensors): 8-byte little-endian header length N, N bytes of JSON header,
then raw tensor bytes. The header's ``__metadata__`` holds one key ``rnnviz`` whose value is a JSON
string::

    {"schema": "rnnviz.checkpoint/1",
     "config": {"cell": ..., "hidden_size": ..., "num_layers": ..., "tokens": [...],
                "preprocessing": ..., "dropout": ...},
     "provenance": {"corpus": ..., "corpus_sha256": ..., "steps": ..., "val_loss": ..., ...}}

No pickle is involved anywhere: safetensors stores raw little-endian numbers, and this module checks
the header by hand (size cap, JSON, dtypes, shapes, offsets) before handing the bytes to safetensors.
Every problem raises :class:`CheckpointError` with a message a user can act on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .model import CharRNN, ModelConfig, empty_model

log = logging.getLogger(__name__)

SCHEMA = "rnnviz.checkpoint/1"
#: Where shipped checkpoints live by default (the repository's checkpoints/ folder); every function
#: that looks a checkpoint up by name takes another ``directory``.
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
#: Largest checkpoint file accepted (bytes). Shipped ones are far smaller.
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
#: Largest JSON header accepted (bytes): room for a big vocabulary plus provenance.
MAX_HEADER_BYTES = 4 * 1024 * 1024
_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; ``str(err)`` says what is wrong and what to do."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``list_checkpoints`` reports about one shipped file (read from its header only)."""

    name: str
    path: Path
    config: ModelConfig
    provenance: dict

    @property
    def label(self) -> str:
        c = self.config
        return f"{self.name} ({c.cell}, {c.num_layers}×{c.hidden_size}, |V|={c.vocab_size})"


# --------------------------------------------------------------------------- saving
def checkpoint_bytes(model: CharRNN, provenance: dict | None = None) -> bytes:
    """``model`` (weights + config + provenance) as the bytes of a .safetensors checkpoint."""
    meta = {"schema": SCHEMA, "config": model.config.to_dict(), "provenance": provenance or {}}
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata={"format": "pt", "rnnviz": json.dumps(meta, ensure_ascii=False)})


def save_checkpoint(model: CharRNN, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write ``model`` (weights + config + provenance) to ``path`` as safetensors. Returns the path."""
    path = Path(path)
    data = checkpoint_bytes(model, provenance)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- reading
def resolve_checkpoint(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> Path:
    """A shipped name (``"timemachine-lstm"``) → ``<directory>/<name>.safetensors`` (default
    :data:`CHECKPOINT_DIR`); else a path."""
    s = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and _NAME_RE.match(s) and not s.endswith(".safetensors"):
        shipped = Path(directory or CHECKPOINT_DIR) / f"{s}.safetensors"
        if shipped.is_file():
            return shipped
        names = ", ".join(i.name for i in list_checkpoints(directory)) or "none"
        raise CheckpointError(f"No shipped checkpoint is called {s!r}. Shipped: {names}.")
    path = Path(s)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    return path


def _read_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path.name} is {size / 2**20:.1f} MiB; the limit is "
                              f"{MAX_CHECKPOINT_BYTES // 2**20} MiB.")
    with open(path, "rb") as fh:
        return fh.read(MAX_CHECKPOINT_BYTES + 1)


#: The first bytes of files people upload by mistake, and what to call them.
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"%PDF", "a PDF document"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x89HDF", "an HDF5 file (Keras .h5?)"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"GIF8", "a GIF image"))
NOT_SAFETENSORS = "This is not a safetensors file"
NOT_RNNVIZ = "This safetensors file is not an rnnviz checkpoint"
DAMAGED = "This safetensors file is damaged"


def _looks_like(data: bytes) -> str:
    """What a non-safetensors file seems to be ("" when unknown), for the refusal's first line."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return f" (it looks like {kind})"
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return " (it looks like a text file)" if text and all(c.isprintable() or c in "\r\n\t" for c in text) else ""


def _check_framing(data: bytes) -> int:
    """The header length N after checking the file's size and its first 8 bytes (see the module
    docstring); a file that is not safetensors at all is refused here, saying so first."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"This file is too large: it is larger than the {MAX_CHECKPOINT_BYTES // 2**20} MiB limit.")
    if len(data) < 8:
        raise CheckpointError(f"{NOT_SAFETENSORS}: it is too short ({len(data)} bytes; truncated?).")
    (n,) = struct.unpack("<Q", data[:8])
    if n <= MAX_HEADER_BYTES and 8 + n <= len(data):
        return n
    if data[:2] == b"PK":
        raise CheckpointError(f"{NOT_SAFETENSORS}: it is a zip archive (a torch.save / pickle file). "
                              "Only .safetensors checkpoints are accepted; nothing was executed.")
    if data[:1] == b"\x80":
        raise CheckpointError(f"{NOT_SAFETENSORS}: it is a Python pickle. Pickles can run code and "
                              "are refused; nothing was executed.")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{NOT_SAFETENSORS}{_looks_like(data)}, so not a valid rnnviz checkpoint. "
                              f"Detail: its first 8 bytes, read as a header length, claim "
                              f"{n:,} bytes, over the {MAX_HEADER_BYTES:,}-byte limit.")
    raise CheckpointError(f"{NOT_SAFETENSORS}, or only part of one{_looks_like(data)}: the header "
                          "runs past the end of the file (truncated?).")


def parse_header(data: bytes, schema: str = SCHEMA, dtypes: dict | None = None) -> tuple[dict, dict]:
    """Validate the safetensors framing and return (tensor entries, rnnviz metadata dict).

    ``schema``: the metadata's required ``schema`` value; ``dtypes``: the accepted safetensors
    dtypes (name → (torch dtype, bytes per element); default: the floating-point ones). Other
    files in this format (the training timeline, :mod:`rnnviz.timeline`) pass their own."""
    dtypes = _DTYPES if dtypes is None else dtypes
    n = _check_framing(data)
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8/JSON, or JSON nested thousands deep
        raise CheckpointError(f"{NOT_SAFETENSORS}: its header is not valid UTF-8 JSON.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{NOT_SAFETENSORS}: its header is not a JSON object.")
    raw_meta = header.pop("__metadata__", None)
    if not isinstance(raw_meta, dict) or "rnnviz" not in raw_meta:
        raise CheckpointError(f"{NOT_RNNVIZ}: it has no rnnviz metadata (config and vocabulary). "
                              "Save it with rnnviz.save_checkpoint, or convert a PyTorch model with "
                              "python -m rnnviz.convert.")
    if not isinstance(raw_meta["rnnviz"], str):
        raise CheckpointError(f"{NOT_RNNVIZ}: its rnnviz metadata must be a JSON string.")
    try:
        meta = json.loads(raw_meta["rnnviz"])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{NOT_RNNVIZ}: its rnnviz metadata is not valid JSON.") from None
    if not isinstance(meta, dict) or meta.get("schema") != schema:
        raise CheckpointError(f"{NOT_RNNVIZ}: Unknown checkpoint schema; expected {schema!r}.")
    body = len(data) - 8 - n
    spans = []
    for key, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{DAMAGED}: tensor {key!r} has a malformed header entry.")
        if not isinstance(entry["dtype"], str) or entry["dtype"] not in dtypes:
            kinds = "floating point " if dtypes is _DTYPES else ""
            raise CheckpointError(f"{NOT_RNNVIZ}: tensor {key!r} has dtype {entry['dtype']}; only "
                                  f"{kinds}({', '.join(dtypes)}) is accepted.")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or len(shape) > 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 10**7 for d in shape)):
            raise CheckpointError(f"{DAMAGED}: tensor {key!r} has an invalid shape {shape!r}.")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CheckpointError(f"{DAMAGED}: tensor {key!r} has invalid data offsets.")
        begin, end = offsets
        numel = math.prod(shape)
        if not 0 <= begin <= end <= body or end - begin != numel * dtypes[entry["dtype"]][1]:
            raise CheckpointError(f"{DAMAGED}: tensor {key!r} claims bytes {begin}..{end} that do not fit its "
                                  "shape or lie outside the file (truncated or lying header).")
        spans.append((begin, end))
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise CheckpointError(f"{DAMAGED}: its tensor data regions overlap or leave gaps.")
        pos = end
    if pos != body:
        raise CheckpointError(f"{DAMAGED}: it has trailing bytes after the tensors (padded, or two files in one?).")
    return header, meta


def _config_from_meta(meta: dict) -> ModelConfig:
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{NOT_RNNVIZ}: its metadata has no config.")
    try:
        return ModelConfig.from_dict(cfg)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"Invalid model config in checkpoint: {err}") from None


def load_model_bytes(data: bytes, name: str = "uploaded") -> CharRNN:
    """Validate and load a checkpoint from raw bytes (e.g. an upload). Raises CheckpointError."""
    header, meta = parse_header(data)
    config = _config_from_meta(meta)
    with torch.device("meta"):  # shapes only: a config may declare GBs of weights the file lacks
        expected = {k: tuple(v.shape) for k, v in CharRNN(config).state_dict().items()}
    found = {k: tuple(v["shape"]) for k, v in header.items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError("This checkpoint is inconsistent: its tensors do not match its config "
                              f"({config.cell}, {config.num_layers} layer(s)): missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}.")
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(f"This checkpoint is inconsistent: tensor {key!r} has shape {list(found[key])} but the config "
                                  f"(|V|={config.vocab_size}, h={config.hidden_size}) needs {list(shape)}.")
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors' own checks: report, never crash
        log.info("checkpoint refused by safetensors: %s", err)
        raise CheckpointError(f"{DAMAGED}: safetensors refused it ({err}).") from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"This checkpoint's weights are unusable: tensor {key!r} contains NaN or infinite values.")
    model = empty_model(config)          # every weight is loaded next: no random init
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    model.eval().requires_grad_(False)
    model.name = name
    prov = meta.get("provenance", {})
    model.provenance = prov if isinstance(prov, dict) else {}
    return model


def load_model(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> CharRNN:
    """Load a shipped checkpoint by name (from ``directory``, default :data:`CHECKPOINT_DIR`), or
    any ``.safetensors`` path, after full validation.

    The returned model is in eval mode with ``requires_grad`` off; ``model.name`` and
    ``model.provenance`` describe where it came from. Raises CheckpointError on any problem.
    """
    path = resolve_checkpoint(name_or_path, directory)
    shipped = Path(directory or CHECKPOINT_DIR).resolve()
    name = path.stem if path.parent.resolve() == shipped else path.name
    return load_model_bytes(_read_bytes(path), name=name)


def read_info(path: Path) -> CheckpointInfo:
    """Config and provenance from a checkpoint's header, without loading tensors."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name} is truncated.")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path.name}: header too large.")
        blob = fh.read(n)
    try:
        meta = json.loads(json.loads(blob)["__metadata__"]["rnnviz"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise CheckpointError(f"{path.name}: no readable rnnviz metadata.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}: no readable rnnviz metadata.")
    return CheckpointInfo(path.stem, path, _config_from_meta(meta), meta.get("provenance", {}))


def list_checkpoints(directory: str | os.PathLike | None = None) -> list[CheckpointInfo]:
    """The checkpoints in ``directory`` (default :data:`CHECKPOINT_DIR`, the shipped ones), sorted
    by name; unreadable ones skipped."""
    infos = []
    for path in sorted(Path(directory or CHECKPOINT_DIR).glob("*.safetensors")):
        try:
            infos.append(read_info(path))
        except CheckpointError:
            continue
    return infos
