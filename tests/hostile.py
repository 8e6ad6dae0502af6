"""A generator of hostile and malformed checkpoint files (issue 7), as bytes. Nothing here loads them.

Every case is a :class:`Hostile`: a name, the raw bytes, a regex the ``CheckpointError`` message must
match (so "refused" means "refused for the right, user-readable reason"), and what it attacks.

Pickle and torch-zip payloads are built *by hand* with :mod:`pickle` (``pickle.dumps`` only writes
opcodes; it runs nothing) and :mod:`zipfile`. Unpickling any of them would call ``builtins.exec`` or
``builtins.open`` and create ``marker`` -- the tests assert the marker never appears. Never pass
these bytes to ``pickle.loads`` / ``torch.load``: use :func:`pickle_opcodes` to inspect them.

Safetensors-shaped cases start from a real tiny checkpoint written by ``rnnviz.save_checkpoint`` and
corrupt one thing each, so each case fails exactly the check it names.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save as st_save

import rnnviz
from rnnviz.checkpoint import MAX_CHECKPOINT_BYTES, MAX_HEADER_BYTES, SCHEMA

#: The tokens of the base model (<unk> + 9 characters); small so every case is a few KB.
BASE_TOKENS = ("<unk>", " ", "e", "t", "h", "a", "i", "m", "n", "c")
BASE_CONFIG = {"cell": "lstm", "hidden_size": 4, "num_layers": 1, "tokens": list(BASE_TOKENS),
               "preprocessing": "none", "dropout": 0.0}
#: A config whose weights would take ~4.3 GB as float32 (8 LSTM layers of 4096 units).
GIGABYTE_CONFIG = {**BASE_CONFIG, "hidden_size": 4096, "num_layers": 8}


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    match: str          #: regex the CheckpointError message must match (re.search)
    what: str           #: one line for docs/RELIABILITY.md


# --------------------------------------------------------------------------- building blocks
class _Call:
    """Pickles as ``func(*args)``: ``pickle.dumps`` writes GLOBAL/REDUCE opcodes, calls nothing."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def pickle_payload(marker: Path, protocol: int = 4) -> bytes:
    """A pickle that, if ever unpickled, runs ``exec`` to write ``marker`` (a classic RCE payload)."""
    code = f"open({str(marker)!r}, 'w').write('code ran')"
    return pickle.dumps(_Call(builtins.exec, code), protocol=protocol)


def pickle_open_payload(marker: Path, protocol: int = 2) -> bytes:
    """A pickle that, if ever unpickled, calls ``open(marker, 'w')`` (creates the marker)."""
    return pickle.dumps(_Call(builtins.open, str(marker), "w"), protocol=protocol)


def pickle_opcodes(data: bytes) -> list[tuple[str, object]]:
    """(opcode name, argument) of a pickle, read with pickletools (inspects, never executes)."""
    return [(op.name, arg) for op, arg, _pos in pickletools.genops(data)]


def torch_zip(marker: Path) -> bytes:
    """A torch.save-style zip archive (``archive/data.pkl`` + storages) whose pickle runs code."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle_payload(marker, protocol=2))
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", b"\0" * 64)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def frame(header: dict | bytes, body: bytes = b"", length: int | None = None) -> bytes:
    """Safetensors framing by hand: 8-byte LE header length (real or a lie), header, body."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


def rnnviz_meta(config: dict | None = None, **extra) -> dict:
    meta = {"schema": SCHEMA, "config": BASE_CONFIG if config is None else config,
            "provenance": {"corpus": "hostile"}, **extra}
    return {"format": "pt", "rnnviz": json.dumps(meta)}


def base_tensors(config: dict = BASE_CONFIG) -> dict[str, torch.Tensor]:
    cfg = rnnviz.ModelConfig.from_dict(config)
    model = rnnviz.build_model(cfg, seed=0)
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}


def pack(tensors: dict[str, torch.Tensor], meta: dict | None = None) -> bytes:
    """A well-formed safetensors file (by the safetensors library) with rnnviz metadata."""
    return st_save(tensors, metadata=rnnviz_meta() if meta is None else meta)


def split(data: bytes) -> tuple[dict, bytes]:
    """(header dict, body bytes) of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def valid_checkpoint() -> bytes:
    """The untouched base checkpoint (loads fine): every hostile case is a corruption of this."""
    return pack(base_tensors())


def _edit(edit) -> bytes:
    """Re-frame the base checkpoint after ``edit(header, body) -> (header, body)``."""
    header, body = split(valid_checkpoint())
    header, body = edit(header, body)
    return frame(header, body)


def _set_entry(key: str, **fields):
    def edit(header, body):
        header[key] = {**header[key], **fields}
        return header, body
    return edit


def _with_config(**changes) -> bytes:
    """The base weights with a changed rnnviz config (tensors untouched)."""
    return pack(base_tensors(), rnnviz_meta({**BASE_CONFIG, **changes}))


def _poison(value: float, dtype=torch.float32) -> bytes:
    t = base_tensors()
    w = t["layers.0.weight_hh_l0"].clone()
    w[1, 2] = value
    t["layers.0.weight_hh_l0"] = w
    return pack({k: v.to(dtype) for k, v in t.items()})


def gigabyte_config_checkpoint() -> bytes:
    """A ~1 KB file whose config declares ~4.3 GB of weights (and holds none)."""
    return frame({"__metadata__": rnnviz_meta(GIGABYTE_CONFIG)})


def huge_vocab_checkpoint() -> bytes:
    """A ~0.6 MB file declaring |V| = 100,000 and h = 4096 (≈ 1.7 G parameters) with no tensors."""
    tokens = ["<unk>"] + [chr(c) for c in range(0x4E00, 0x4E00 + 99_999)]
    return frame({"__metadata__": rnnviz_meta({**BASE_CONFIG, "hidden_size": 4096, "tokens": tokens})})


# --------------------------------------------------------------------------- the cases
def hostile_checkpoints(marker: Path) -> list[Hostile]:
    """Every crafted bad checkpoint. ``marker``: the file any code execution would create."""
    good = valid_checkpoint()
    header, body = split(good)
    (n,) = struct.unpack("<Q", good[:8])
    raw_header = good[8:8 + n]
    hh = "layers.0.weight_hh_l0"
    hh_begin, hh_end = header[hh]["data_offsets"]
    pkl = pickle_payload(marker)
    cases = [
        # --- code-carrying formats
        Hostile("pickle-exec", pkl, r"pickle.*nothing was executed",
                "pickle (protocol 4) whose unpickling calls exec() to write a marker file"),
        Hostile("pickle-open-proto2", pickle_open_payload(marker), r"pickle.*nothing was executed",
                "pickle (protocol 2) whose unpickling calls open(marker, 'w')"),
        Hostile("pickle-proto0-text", pickle_payload(marker, protocol=0), r"not a valid rnnviz checkpoint",
                "text pickle (protocol 0, starts 'cbuiltins') calling exec()"),
        Hostile("torch-zip-code", torch_zip(marker), r"zip archive.*nothing was executed",
                "torch.save-style zip whose data.pkl calls exec()"),
        Hostile("pickle-after-8-bytes", struct.pack("<Q", len(pkl)) + pkl,
                r"not valid UTF-8 JSON", "safetensors length prefix followed by a pickle as 'header'"),
        # --- truncation and framing
        Hostile("empty", b"", r"too short.*truncated", "0-byte file"),
        Hostile("truncated-5-bytes", good[:5], r"too short.*truncated", "first 5 bytes only"),
        Hostile("truncated-in-header", good[:8 + 20], r"header runs past the end",
                "cut inside the JSON header"),
        Hostile("truncated-in-tensors", good[:len(good) - len(body) // 2], r"outside the file",
                "cut halfway through the tensor data"),
        Hostile("header-length-past-eof", frame(good[8:], length=len(good) + 100),
                r"header runs past the end", "header length 100 bytes beyond end of file"),
        Hostile("header-length-2^63", frame(good[8:], length=2**63), r"over the [\d,]+-byte limit",
                "header length 2^63"),
        Hostile("header-length-over-cap", frame(good[8:], length=MAX_HEADER_BYTES + 1),
                r"over the [\d,]+-byte limit", "header length 1 byte over the 4 MiB cap"),
        Hostile("offsets-outside-file", _edit(_set_entry(hh, data_offsets=[hh_begin + 10**6, hh_end + 10**6])),
                r"outside the file", "a tensor's offsets 1 MB past end of file"),
        Hostile("offsets-negative", _edit(_set_entry(hh, data_offsets=[-64, hh_end - hh_begin - 64])),
                r"outside the file", "negative data offsets"),
        Hostile("offsets-size-lie", _edit(_set_entry(hh, data_offsets=[hh_begin, hh_end - 4])),
                r"do not fit its shape", "offsets span 4 bytes fewer than the shape needs"),
        Hostile("offsets-overlap", _overlapping(header, body), r"overlap or leave gaps",
                "two tensors share the same bytes (overlapping offsets)"),
        Hostile("offsets-not-ints", _edit(_set_entry(hh, data_offsets=[0.0, "64"])),
                r"invalid data offsets", "offsets given as float and string"),
        Hostile("trailing-bytes", good + b"\0" * 16, r"trailing bytes", "16 junk bytes after the tensors"),
        Hostile("header-not-object", frame([1, 2, 3]), r"not a JSON object", "header is a JSON list"),
        Hostile("header-deep-nesting", frame(b"[" * 200_000), r"not valid UTF-8 JSON",
                "header nested 200,000 levels deep (RecursionError in json)"),
        Hostile("header-non-utf8", frame(raw_header.replace(b'"pt"', b'"\xff\xfe"'), body),
                r"not valid UTF-8 JSON", "header bytes are not UTF-8"),
        Hostile("entry-extra-field", _edit(_set_entry(hh, extra=1)), r"malformed header entry",
                "tensor entry with an unknown field"),
        # --- dtypes and shapes
        Hostile("dtype-I64", _retyped(torch.int64), r"dtype I64.*only floating", "all tensors int64"),
        Hostile("dtype-U8", _retyped(torch.uint8), r"dtype U8.*only floating", "all tensors uint8"),
        Hostile("dtype-BOOL", _retyped(torch.bool), r"dtype BOOL.*only floating", "all tensors bool"),
        Hostile("dtype-F64", _retyped(torch.float64), r"dtype F64.*only floating", "float64 (not accepted)"),
        Hostile("dtype-not-a-string", _edit(_set_entry(hh, dtype=["F32"])), r"dtype \['F32'\]",
                "dtype given as a JSON list (was a TypeError crash)"),
        Hostile("shape-transposed", _reshaped(hh, lambda t: t.T.contiguous()), rf"'{hh}' has shape \[4, 16\]",
                "W_hh stored transposed"),
        Hostile("shape-3d", _edit(_set_entry(hh, shape=[4, 4, 4])), r"invalid shape",
                "a 3-D weight"),
        Hostile("shape-negative", _edit(_set_entry(hh, shape=[-16, -4])), r"invalid shape",
                "negative dimensions"),
        Hostile("shape-huge-declared", _edit(_set_entry(hh, shape=[10**7, 10**7])), r"do not fit its shape",
                "a tensor declaring 10^14 elements (400 TB) in a few-KB file"),
        Hostile("nan-weights", _poison(float("nan")), r"NaN or infinite", "one NaN in W_hh"),
        Hostile("inf-weights", _poison(float("inf")), r"NaN or infinite", "one +inf in W_hh"),
        Hostile("nan-weights-f16", _poison(float("-inf"), torch.float16), r"NaN or infinite",
                "-inf in a float16 file"),
        # --- metadata
        Hostile("no-metadata", st_save(base_tensors()), r"no rnnviz metadata",
                "plain safetensors (no rnnviz config/vocabulary)"),
        Hostile("metadata-not-json", pack(base_tensors(), {"rnnviz": "{not json"}),
                r"metadata is not valid JSON", "rnnviz metadata string is not JSON"),
        Hostile("metadata-not-string", frame({**header, "__metadata__": {"rnnviz": {"schema": SCHEMA}}}, body),
                r"must be a JSON string", "rnnviz metadata is an object, not a string"),
        Hostile("metadata-deep-nesting", pack(base_tensors(), {"rnnviz": "[" * 100_000}),
                r"metadata is not valid JSON", "metadata nested 100,000 levels deep"),
        Hostile("metadata-wrong-schema", pack(base_tensors(), {"rnnviz": json.dumps({"schema": "x/9"})}),
                r"Unknown checkpoint schema", "unknown schema string"),
        Hostile("metadata-list", pack(base_tensors(), {"rnnviz": "[1, 2]"}), r"Unknown checkpoint schema",
                "metadata is a JSON list"),
        Hostile("config-missing", pack(base_tensors(), {"rnnviz": json.dumps({"schema": SCHEMA})}),
                r"no config", "schema but no config"),
        Hostile("config-missing-key", pack(base_tensors(), rnnviz_meta(
            {k: v for k, v in BASE_CONFIG.items() if k != "hidden_size"})),
                r"Invalid model config.*hidden_size", "config without hidden_size"),
        Hostile("config-extra-key", _with_config(evil="__import__('os')"), r"unknown config fields.*evil",
                "config with an unknown field"),
        Hostile("config-hidden-absurd", _with_config(hidden_size=10**9), r"hidden_size must be an integer in 1\.\.",
                "hidden_size = 10^9"),
        Hostile("config-hidden-float", _with_config(hidden_size=4.0), r"hidden_size must be an integer",
                "hidden_size = 4.0"),
        Hostile("config-hidden-bool", _with_config(hidden_size=True), r"hidden_size must be an integer",
                "hidden_size = true"),
        Hostile("config-layers-zero", _with_config(num_layers=0), r"num_layers must be an integer",
                "num_layers = 0"),
        Hostile("config-unknown-cell", _with_config(cell="transformer"), r"unknown cell",
                "cell = 'transformer'"),
        Hostile("config-dropout-nan", frame({**header, "__metadata__": {"rnnviz": json.dumps(
            {"schema": SCHEMA, "config": {**BASE_CONFIG, "dropout": float("nan")}})}}, body),
                r"dropout must be in", "dropout = NaN"),
        Hostile("config-preprocessing", _with_config(preprocessing="rm -rf"), r"unknown preprocessing",
                "unknown preprocessing name"),
        Hostile("vocab-duplicate-tokens", _with_config(tokens=list(BASE_TOKENS[:-1]) + ["e"]),
                r"duplicate", "vocabulary lists 'e' twice"),
        Hostile("vocab-no-unk", _with_config(tokens=["a", *BASE_TOKENS[1:]]), r"<unk>",
                "first token is not <unk>"),
        Hostile("vocab-multichar-token", _with_config(tokens=[*BASE_TOKENS[:-1], "<script>"]),
                r"single character", "a token '<script>'"),
        Hostile("vocab-not-strings", _with_config(tokens=["<unk>", 1, 2, 3, 4, 5, 6, 7, 8, 9]),
                r"single character", "tokens are numbers"),
        Hostile("vocab-shape-mismatch", _with_config(tokens=[*BASE_TOKENS, "z"]),
                r"has shape \[16, 10\] but the config \(\|V\|=11", "11 tokens for weights made for 10"),
        Hostile("cell-shape-mismatch", _with_config(cell="gru"), r"has shape \[16, .*needs \[12, ",
                "LSTM weights labelled as a GRU"),
        Hostile("missing-tensor", pack({k: v for k, v in base_tensors().items() if k != hh}),
                r"missing \['layers\.0\.weight_hh_l0'\]", "W_hh absent"),
        Hostile("extra-tensor", pack({**base_tensors(), "payload": torch.zeros(3)}),
                r"unexpected \['payload'\]", "an extra tensor named 'payload'"),
        Hostile("config-declares-gigabytes", gigabyte_config_checkpoint(), r"missing \[",
                "1 KB file whose config declares 8x4096 LSTM (~4.3 GB); was allocated before the fix"),
        Hostile("config-huge-vocab", huge_vocab_checkpoint(), r"missing \[",
                "0.6 MB header declaring |V|=100,000, h=4096 (~1.7 G params)"),
    ]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def _overlapping(header: dict, body: bytes) -> bytes:
    """bias_hh points at bias_ih's bytes: same size, so only the overlap/gap check can catch it."""
    header = json.loads(json.dumps(header))
    header["layers.0.bias_hh_l0"]["data_offsets"] = list(header["layers.0.bias_ih_l0"]["data_offsets"])
    return frame(header, body)


def _retyped(dtype: torch.dtype) -> bytes:
    return pack({k: (v * 3).to(dtype) for k, v in base_tensors().items()})


def _reshaped(key: str, fn) -> bytes:
    t = base_tensors()
    t[key] = fn(t[key])
    return pack(t)


def write_cases(cases: list[Hostile], directory: Path, suffix: str = ".safetensors") -> list[Path]:
    """Write every case to ``directory/<name><suffix>`` (pickles and zips renamed, as an attacker would)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = directory / f"{case.name}{suffix}"
        path.write_bytes(case.data)
        paths.append(path)
    return paths


def oversized_file(directory: Path) -> Path:
    """A sparse file 1 byte over MAX_CHECKPOINT_BYTES (no disk used), with a valid-looking prefix."""
    path = directory / "oversized.safetensors"
    with open(path, "wb") as fh:
        fh.write(valid_checkpoint())
        fh.truncate(MAX_CHECKPOINT_BYTES + 1)
    return path


# --------------------------------------------------------------------------- hostile texts
#: Texts pasted by a hostile or careless user (name → text). The 100,000-character paste is built
#: from a pattern so it is deterministic and mixes known and unknown characters.
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_PAYLOADS = (XSS_IMG, XSS_SCRIPT, '"><svg onload="window.__xss=1">', "</textarea><b>bold?</b>",
                "[click](javascript:window.__xss=1)")
HOSTILE_TEXTS = {
    "empty": "",
    "one-char": "t",
    "paste-100k": ("the time machine by h. g. wells — émigré 👩‍💻 <b>x</b>\n" * 2000)[:100_000],
    "out-of-vocabulary": "ÆØÅ ß ŋ Ω ж 中文 the",
    "emoji-combining": "e\u0301 a\u0308\u0323 👩\u200d💻 🇫🇷 👍🏽 Z\u0337\u0335\u0351",
    "nul-control": "a\x00b\x01c\x07d\x1b[31me\x7f\x85\u2028\u2029\ufeff\ufffd\r\n\t end",
    "right-to-left": "\u202eabc\u202c שלום עולם مرحبا بالعالم \u200f!",
    "html-script": " ".join(XSS_PAYLOADS) + " &amp; &lt;",
    "whitespace-only": " \n\t ",
}


# --------------------------------------------------------------------------- page helpers
def write_tiny_checkpoints(directory: Path) -> Path:
    """Small deterministic models under the app's default names (timemachine-{rnn,gru,lstm})."""
    text = "hello world, the time machine by h. g. wells\n"
    tokens = tuple(rnnviz.Vocab.from_text(text).tokens)
    for name, cell, layers in (("timemachine-lstm", "lstm", 2), ("timemachine-gru", "gru", 1),
                               ("timemachine-rnn", "rnn_tanh", 1)):
        model = rnnviz.build_model(rnnviz.ModelConfig(cell, 8, layers, tokens), seed=0)
        rnnviz.save_checkpoint(model, directory / f"{name}.safetensors", {"corpus": "tiny test"})
    return directory
