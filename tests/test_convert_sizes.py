"""The converter checks declared sizes before it builds anything (issue 27, finding 10).

Each hostile archive is built in tmp_path from a real ``torch.save`` file: stride-0 views claiming
10⁹ columns or 2·10⁷ inputs from a one-element storage, a storage record shorter than the pickle
declares, a compressed (zip-bomb style) record, a zip directory declaring more bytes than the file.
Each must be refused with a message naming the problem (exit 2, no traceback), with no allocation
beyond the file's own size (the child's peak RSS is measured), and the pickle refusal must say that
pickled code is refused, not quote torch's advice to turn weights_only off.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zipfile

import pytest
import torch

from rnnviz.convert import main

from .conftest import REPO
from .test_convert import H, V, _payload, source, write_tokens


def _state_dict(**override) -> dict:
    rnn, head = source("lstm", 1)
    sd = {**{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
          **{f"head.{k}": v for k, v in head.state_dict().items()}}
    return {**sd, **override}


def _saved(sd: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def _rezip(data: bytes, edit=lambda name, raw: raw, deflate: tuple[str, ...] = ()) -> bytes:
    """The archive rewritten entry by entry: ``edit`` may change a record; ``deflate`` compresses."""
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for info in src.infolist():
            packed = any(info.filename.endswith(s) for s in deflate)
            zf.writestr(info.filename, edit(info.filename, src.read(info)),
                        zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
    return out.getvalue()


def _inflate_directory(data: bytes) -> bytes:
    """The central directory's uncompressed size of every record set to ~4 GiB (a forged bomb)."""
    raw, pos = bytearray(data), data.find(b"PK\x01\x02")
    while pos >= 0:
        struct.pack_into("<I", raw, pos + 24, 0xFFFF0000)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(raw)


def _storage_key(sd_key: str) -> str:
    """The storage record name of one tensor (torch numbers storages in the dict's order)."""
    return str(list(_state_dict()).index(sd_key))


def _cases() -> list[tuple[str, bytes, str]]:
    good = _saved(_state_dict())
    key = _storage_key("rnn.weight_hh_l0")
    return [
        ("stride-0 1e9 columns", _saved(_state_dict(**{
            "head.weight": torch.zeros(V, 1).expand(V, 10**9)})), r"claims shape \[\d+, 1000000000\]"),
        ("stride-0 2e7 inputs", _saved(_state_dict(**{
            "rnn.weight_ih_l0": torch.zeros(1).expand(4 * H, 2 * 10**7)})), r"from a storage of 1 elements"),
        ("short storage record", _rezip(good, lambda n, raw: raw[:8] if n.endswith(f"data/{key}") else raw),
         r"declares \d+ elements .* holds 8 bytes"),
        ("compressed record", _rezip(good, deflate=(f"data/{key}",)), "compressed entries"),
        ("forged directory sizes", _inflate_directory(good), "zip directory declares"),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_hostile_sizes_refused_in_process(case, tmp_path, capsys):
    name, data, match = case
    (tmp_path / "bad.pt").write_bytes(data)
    out = tmp_path / "out.safetensors"
    assert main([str(tmp_path / "bad.pt"), "--cell", "lstm", "--tokens",
                 str(write_tokens(tmp_path / "t.json")), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnviz.convert: error: ")
    assert re.search(match, err), err
    assert not out.exists()


def test_stride0_inputs_peak_memory_stays_small(tmp_path):
    """Run as a user would; the child's peak RSS stays near torch's own footprint (2·10⁷ × 24 float32
    would be 1.9 GB). The peak is the child's VmHWM (reset by exec), not ru_maxrss: Linux keeps
    ru_maxrss across fork + exec, so in a long pytest run it reported the pytest process' own size."""
    (tmp_path / "bad.pt").write_bytes(_cases()[1][1])
    code = ("import re, sys; from rnnviz.convert import main; rc = main(sys.argv[1:]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bad.pt"), "--cell", "lstm",
                           "--tokens", str(write_tokens(tmp_path / "t.json")),
                           "-o", str(tmp_path / "o.safetensors")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert peak_mb < 700, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.parametrize("kind", ["torch.save", "raw pickle", "torch zip"])
def test_pickle_refusal_says_code_is_refused(kind, tmp_path, capsys):
    marker = tmp_path / "CODE_RAN"
    src = _payload(kind, marker, tmp_path / "model.pt")
    assert main([str(src), "--cell", "lstm", "--tokens", str(write_tokens(tmp_path / "t.json")),
                 "-o", str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "refuses pickled code" in err and "Nothing in the file was executed" in err
    assert "weights_only set to False" not in err and "Re-running" not in err
    assert not marker.exists()


def test_real_archives_still_convert(tmp_path):
    (tmp_path / "ok.pt").write_bytes(_saved(_state_dict()))
    assert main([str(tmp_path / "ok.pt"), "--cell", "lstm", "--tokens",
                 str(write_tokens(tmp_path / "t.json")), "-o", str(tmp_path / "o.safetensors")]) == 0
