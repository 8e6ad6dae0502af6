"""Check a ``torch.save`` archive's declared sizes before ``torch.load`` builds anything.

:func:`check_archive` reads only the zip's central directory and the archive's ``data.pkl``, with a
restricted unpickler whose ``find_class`` returns inert stand-ins for the four names a state_dict
uses (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, ``collections.OrderedDict`` and
the ``torch.<Type>Storage`` markers) and refuses every other name: nothing in the file runs, and no
tensor or storage is built. It then checks, for every tensor:

- its storage's record exists, is stored (not compressed), and holds exactly the bytes the pickle
  declares (``numel × itemsize``), so no storage is larger than the file;
- the view fits inside its storage (offset + extent) and claims no more elements than the storage
  holds (a stride-0 tensor claiming 10⁹ columns from one is refused), so nothing later built from
  the shapes (modules, copies) is larger than what the file itself contains.

The archive as a whole: entries must be stored uncompressed (``torch.save`` never compresses; a
compressed entry is how a zip bomb hides gigabytes in a small file), the sum of declared sizes must
not exceed the file, and ``data.pkl`` must be small (a state_dict's pickle is ~200 bytes a tensor).
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import torch

#: Largest ``data.pkl`` accepted (a state_dict pickle is ~200 bytes per tensor).
MAX_PICKLE_BYTES = 1 << 20
#: Most dimensions a tensor may declare.
MAX_DIMS = 8
_STORAGE_TYPES = {"Float": torch.float32, "Double": torch.float64, "Half": torch.float16,
                  "BFloat16": torch.bfloat16, "Long": torch.int64, "Int": torch.int32,
                  "Short": torch.int16, "Char": torch.int8, "Byte": torch.uint8, "Bool": torch.bool}
REFUSED_CODE = ("rnnviz refuses pickled code: it reads plain state_dicts (tensors only, as "
                "torch.load(weights_only=True) does) and never runs anything a file names. "
                "Nothing in the file was executed.")


class ArchiveError(ValueError):
    """The archive is refused before anything is built; ``str(err)`` says why."""


@dataclass(frozen=True)
class _Storage:
    key: str
    itemsize: int
    numel: int


@dataclass(frozen=True)
class _View:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


@dataclass(frozen=True)
class _StorageType:
    itemsize: int


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    return _View(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_rest):
    return data


_ALLOWED = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("collections", "OrderedDict"): OrderedDict}
_ALLOWED.update({("torch", f"{t}Storage"): _StorageType(dtype.itemsize)
                 for t, dtype in _STORAGE_TYPES.items()})


class _SizeReader(pickle.Unpickler):
    """Reads a state_dict pickle into :class:`_View` records; any other global is refused."""

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise ArchiveError(f"the file's pickle names {module}.{name}, which is code, not weights. "
                               + REFUSED_CODE)
        return found

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[4], int) or pid[4] < 0):
            raise ArchiveError(f"the file's pickle has a storage reference rnnviz does not read ({pid!r:.80}).")
        return _Storage(str(pid[2]), pid[1].itemsize, pid[4])


def _entries(data: bytes, name: str) -> dict[str, zipfile.ZipInfo]:
    if not data.startswith(b"PK\x03\x04"):
        raise ArchiveError(f"{name} is not a torch.save archive (a zip file). Raw or legacy pickles are "
                           "not read: save with torch.save(model.state_dict(), path) (PyTorch ≥ 1.6). "
                           + REFUSED_CODE)
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ArchiveError(f"{name} is not a readable zip archive ({err}).") from None
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ArchiveError(f"{name} has compressed entries ({packed[:3]}); torch.save writes them "
                           "uncompressed, so the file was not written by torch.save. Refused unread.")
    declared = sum(i.file_size for i in infos)
    if declared > len(data) or any(i.file_size != i.compress_size for i in infos):
        raise ArchiveError(f"{name}'s zip directory declares {declared:,} bytes of content in a "
                           f"{len(data):,}-byte file. Refused unread.")
    return {i.filename: i for i in infos}


def _views(data: bytes, infos: dict[str, zipfile.ZipInfo], name: str) -> tuple[str, list]:
    pkls = [n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pkls) != 1:
        raise ArchiveError(f"{name} holds {len(pkls)} data.pkl records; a torch.save archive has one.")
    info = infos[pkls[0]]
    if info.file_size > MAX_PICKLE_BYTES:
        raise ArchiveError(f"{name}'s data.pkl is {info.file_size:,} bytes; a state_dict's is a few KB "
                           f"(limit {MAX_PICKLE_BYTES:,}).")
    raw = zipfile.ZipFile(io.BytesIO(data)).read(info)
    try:
        obj = _SizeReader(io.BytesIO(raw)).load()
    except ArchiveError:
        raise
    except Exception as err:  # malformed pickle opcodes, wrong argument shapes
        raise ArchiveError(f"{name}'s data.pkl cannot be read as a state_dict "
                           f"({type(err).__name__}).") from None
    return pkls[0][: -len("data.pkl")], list(_walk(obj, ""))


def _walk(obj, path: str, depth: int = 0):
    """Every (path, view) in the unpickled object, nested dicts and lists included."""
    if depth > MAX_DIMS:
        raise ArchiveError(f"the file's pickle nests containers over {MAX_DIMS} deep; a state_dict is flat.")
    if isinstance(obj, _View):
        yield path or "(top level)", obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]", depth + 1)


def _check_view(key: str, v: _View) -> None:
    ok = (len(v.size) == len(v.stride) <= MAX_DIMS and isinstance(v.offset, int) and v.offset >= 0
          and all(isinstance(n, int) and n >= 0 for n in (*v.size, *v.stride)))
    if not ok:
        raise ArchiveError(f"tensor {key!r} declares an invalid layout (size {v.size!r:.60}, "
                           f"stride {v.stride!r:.60}).")
    numel = math.prod(v.size)
    if numel == 0:
        return
    extent = v.offset + sum((n - 1) * s for n, s in zip(v.size, v.stride)) + 1
    if numel > v.storage.numel or extent > v.storage.numel:
        raise ArchiveError(
            f"tensor {key!r} claims shape {list(v.size)} ({numel:,} elements, strides {list(v.stride)}) "
            f"from a storage of {v.storage.numel:,} elements: a view that repeats or overruns its "
            "data would be built far larger than the file. Save real tensors (.contiguous()).")


def check_archive(data: bytes, name: str = "state_dict") -> None:
    """Refuse (:class:`ArchiveError`) an archive whose declared sizes allow more than the file holds.

    Builds no tensor and runs nothing the file names; see the module docstring for the checks.
    """
    infos = _entries(data, name)
    prefix, views = _views(data, infos, name)
    for key, v in views:
        record = infos.get(f"{prefix}data/{v.storage.key}")
        need = v.storage.numel * v.storage.itemsize
        if record is None or record.file_size != need:
            have = "no record" if record is None else f"{record.file_size:,} bytes"
            raise ArchiveError(f"tensor {key!r}: its storage {v.storage.key!r} declares {v.storage.numel:,} "
                               f"elements ({need:,} bytes) but the archive holds {have} for it.")
        _check_view(key, v)
