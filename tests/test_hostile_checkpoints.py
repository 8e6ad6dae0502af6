"""Hostile checkpoints (issue 7): every crafted bad file is refused with a clear CheckpointError, no
code runs, memory stays bounded, and in the page the refusal is shown while other sessions go on.

The files come from ``tests/hostile.py``. Pickle/zip payloads are only ever *inspected* with
pickletools/zipfile here; nothing unpickles them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import rnnviz
from rnnviz import CheckpointError, load_model, load_model_bytes
from rnnviz.checkpoint import MAX_CHECKPOINT_BYTES, list_checkpoints

from . import hostile
from .conftest import app_on, SLOW_MS, REPO, StreamlitServer, tiny_model, wait_for_app

#: Bound on peak RSS growth while loading the files that declare gigabytes (documented in
#: docs/RELIABILITY.md). Before the fix in checkpoint.py the 8x4096-LSTM config cost ~4 GB.
MEMORY_BOUND_MB = 64


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    """The file a payload would create if it ever ran; checked absent after every test here."""
    path = tmp_path_factory.mktemp("marker") / "CODE_RAN"
    yield path
    assert not path.exists(), "a hostile payload executed code"


@pytest.fixture(scope="module")
def cases(marker) -> list[hostile.Hostile]:
    return hostile.hostile_checkpoints(marker)


CASE_NAMES = [c.name for c in hostile.hostile_checkpoints(Path("/nonexistent/marker"))]


def _case(cases, name):
    return next(c for c in cases if c.name == name)


def _assert_clear(message: str) -> None:
    """A message a user can read: one short paragraph, no traceback or Python internals."""
    assert 10 < len(message) < 400, message
    for bad in ("Traceback", "File \"", "Error(", "object at 0x", "\\x"):
        assert bad not in message, message


# --------------------------------------------------------------------------- the generator
def test_generator_covers_the_issue_list(cases):
    assert len(cases) >= 20
    names = {c.name for c in cases}
    for needed in ("pickle-exec", "torch-zip-code", "truncated-in-tensors", "header-length-past-eof",
                   "header-length-2^63", "offsets-outside-file", "offsets-overlap", "dtype-I64",
                   "dtype-U8", "dtype-BOOL", "shape-transposed", "nan-weights", "inf-weights",
                   "vocab-shape-mismatch", "shape-huge-declared", "header-non-utf8",
                   "metadata-not-json", "missing-tensor", "extra-tensor", "config-hidden-absurd",
                   "vocab-duplicate-tokens", "config-declares-gigabytes"):
        assert needed in names
    # Each case is a distinct file, and the valid base they are made from does load.
    assert len({c.data for c in cases}) == len(cases)
    model = load_model_bytes(hostile.valid_checkpoint())
    assert model.config.tokens == hostile.BASE_TOKENS


def test_payloads_really_carry_code(cases, marker):
    """The marker check below means something only if the payloads would run code when unpickled:
    inspect their opcodes (pickletools never executes) for a call of builtins.exec / open."""
    for name, module, func in (("pickle-exec", "builtins", "exec"), ("pickle-open-proto2", "io", "open"),
                               ("pickle-proto0-text", "__builtin__", "exec")):
        ops = hostile.pickle_opcodes(_case(cases, name).data)
        names = [op for op, _ in ops]
        args = " ".join(str(a) for _, a in ops)
        assert "REDUCE" in names, name
        assert module in args and func in args and str(marker) in args, name
    with zipfile.ZipFile(__import__("io").BytesIO(_case(cases, "torch-zip-code").data)) as zf:
        assert "archive/data.pkl" in zf.namelist()
        ops = hostile.pickle_opcodes(zf.read("archive/data.pkl"))
        assert ("REDUCE", None) in ops and ("GLOBAL", "__builtin__ exec") in ops
    assert not marker.exists()


# --------------------------------------------------------------------------- refusal, by bytes and by path
@pytest.mark.parametrize("name", CASE_NAMES)
def test_refused_with_clear_message(name, cases, marker, tmp_path):
    case = _case(cases, name)
    with pytest.raises(CheckpointError) as info:
        load_model_bytes(case.data, name="evil.safetensors")
    assert re.search(case.match, str(info.value)), (case.name, str(info.value))
    _assert_clear(str(info.value))
    # Same file on disk under a .safetensors name (renamed pickle/zip included), via load_model.
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(case.data)
    with pytest.raises(CheckpointError) as info2:
        load_model(path)
    assert str(info2.value) == str(info.value)
    assert not marker.exists(), f"{name}: code ran"


#: How every refusal begins: what is wrong with the file, in the user's terms, before any detail.
LEADS = ("This is not a safetensors file", "This safetensors file is not an rnnviz checkpoint",
         "This safetensors file is damaged", "This checkpoint is inconsistent",
         "This checkpoint's weights are unusable", "Invalid model config in checkpoint",
         "This file is too large")


@pytest.mark.parametrize("name", CASE_NAMES)
def test_refusal_leads_with_what_is_wrong(name, cases):
    """Issue 16 item 9: the first words say what the user did wrong; the detail comes after."""
    with pytest.raises(CheckpointError) as info:
        load_model_bytes(_case(cases, name).data)
    assert str(info.value).startswith(LEADS), str(info.value)


@pytest.mark.parametrize("data, kind", [
    (b"hello, this is my model, honest\n" * 4, "a text file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "a PNG image"),
    (b"%PDF-1.7\n" + b"\0" * 64, "a PDF document"),
    (b"\x1f\x8b\x08\x00" + b"\xff" * 64, "a gzip archive"),
], ids=["text", "png", "pdf", "gzip"])
def test_junk_upload_says_not_safetensors_first(data, kind):
    """The issue's example (a junk file whose first 8 bytes read as a 16-quintillion-byte header)
    now leads with "This is not a safetensors file", names what it looks like, then the detail."""
    with pytest.raises(CheckpointError) as info:
        load_model_bytes(data)
    msg = str(info.value)
    assert msg.startswith("This is not a safetensors file"), msg
    assert kind in msg.split("Detail:")[0], msg
    assert msg.index("not a safetensors file") < msg.find("bytes"), msg
    _assert_clear(msg)


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = hostile.oversized_file(tmp_path)
    assert path.stat().st_size == MAX_CHECKPOINT_BYTES + 1
    with pytest.raises(CheckpointError, match=r"MiB; the limit is 64 MiB"):
        load_model(path)
    with pytest.raises(CheckpointError, match=r"larger than the 64 MiB limit"):
        load_model_bytes(b"\0" * (MAX_CHECKPOINT_BYTES + 1))


def test_listing_skips_unreadable_files_and_never_crashes(cases, tmp_path):
    """Hostile files dropped into the checkpoint folder must not break the sidebar's listing."""
    hostile.write_cases(cases, tmp_path)
    rnnviz.save_checkpoint(tiny_model("gru"), tmp_path / "good.safetensors")
    infos = list_checkpoints(tmp_path)
    listed = {i.name for i in infos}
    assert "good" in listed
    for name in ("pickle-exec", "torch-zip-code", "empty", "header-deep-nesting", "header-non-utf8",
                 "metadata-not-json", "metadata-deep-nesting", "metadata-list", "config-hidden-absurd",
                 "vocab-duplicate-tokens", "header-length-2^63"):
        assert name not in listed
    # Whatever the header-only listing lets through is still refused on load.
    for name in listed - {"good"}:
        with pytest.raises(CheckpointError):
            load_model(tmp_path / f"{name}.safetensors")


# --------------------------------------------------------------------------- memory
def test_memory_stays_bounded_for_files_declaring_gigabytes(tmp_path):
    """Load (and fail on) files declaring GBs in a fresh interpreter; its peak RSS must not grow by
    more than MEMORY_BOUND_MB over the baseline taken after loading a valid model."""
    hostile.oversized_file(tmp_path)
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from tests import hostile
        import rnnviz
        big = [hostile.gigabyte_config_checkpoint(), hostile.huge_vocab_checkpoint()]
        cases = {{c.name: c.data for c in hostile.hostile_checkpoints(Path({str(tmp_path / 'm')!r}))}}
        big += [cases[n] for n in ("shape-huge-declared", "header-length-2^63", "offsets-outside-file",
                                   "header-deep-nesting", "config-hidden-absurd")]
        rnnviz.load_model_bytes(hostile.valid_checkpoint())
        rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        base = rss()
        refused = 0
        for _ in range(3):
            for data in big:
                try:
                    rnnviz.load_model_bytes(data)
                except rnnviz.CheckpointError:
                    refused += 1
            try:
                rnnviz.load_model(Path({str(tmp_path / 'oversized.safetensors')!r}))
            except rnnviz.CheckpointError:
                refused += 1
        print(json.dumps({{"base_mb": base, "peak_mb": rss(), "refused": refused}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["refused"] == 3 * 8
    growth = result["peak_mb"] - result["base_mb"]
    assert growth < MEMORY_BOUND_MB, result


# --------------------------------------------------------------------------- in the page
@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpts")
    rnnviz.save_checkpoint(tiny_model("lstm", 2), d / "timemachine-lstm.safetensors")
    rnnviz.save_checkpoint(tiny_model("gru"), d / "timemachine-gru.safetensors")
    return d


def _app(monkeypatch, ckpt_dir):
    at = app_on(ckpt_dir, monkeypatch)
    return at.run()


def test_page_refuses_every_hostile_upload(cases, marker, monkeypatch, ckpt_dir):
    at = _app(monkeypatch, ckpt_dir)
    assert not at.exception
    other = _app(monkeypatch, ckpt_dir)       # a second session, running between uploads
    for case in cases:
        at.file_uploader[0].set_value((f"{case.name}.safetensors", case.data, "application/octet-stream"))
        at.run()
        assert not at.exception, (case.name, [e.value for e in at.exception])
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and errors[0].startswith("Upload refused: "), (case.name, errors)
        assert re.search(case.match, errors[0]), (case.name, errors[0])
        _assert_clear(errors[0][len("Upload refused: "):])
        # The refused file never becomes a choice, and the page still shows the shipped model.
        assert all("uploaded" not in str(o) for o in at.selectbox(key="ckpt").options)
        assert at.selectbox(key="ckpt").value == "timemachine-lstm"
        if case.name in ("pickle-exec", "config-declares-gigabytes", "nan-weights"):
            other.text_area(key="text").set_value(f"still working after {case.name}").run()
            assert not other.exception and not other.error
    assert not marker.exists()
    # After all that, a valid upload in the same session works.
    at.file_uploader[0].set_value(("fine.safetensors", hostile.valid_checkpoint(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    assert any("fine.safetensors" in str(s.value) for s in at.success)


def test_browser_upload_refused_while_another_session_keeps_working(cases, marker, ckpt_dir, browser, tmp_path):
    """Real server + Chromium: session A uploads hostile files, session B keeps tracing text."""
    files = hostile.write_cases([_case(cases, n) for n in (
        "pickle-exec", "torch-zip-code", "config-declares-gigabytes", "header-deep-nesting",
        "nan-weights")], tmp_path)
    server = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(ckpt_dir)})
    ctx_a = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx_b = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        a.goto(server.url)
        b.goto(server.url)
        wait_for_app(a)
        wait_for_app(b)
        for i, path in enumerate(files):
            a.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
            alert = a.locator("[data-testid='stAlertContentError']").filter(has_text="Upload refused")
            alert.wait_for(timeout=SLOW_MS)
            wait_for_app(a)
            assert not a.locator("[data-testid='stException']").all_inner_texts()
            body = a.locator("[data-testid='stApp']").inner_text()
            assert "Traceback" not in body
            token = f"session b step {i}"
            area = b.locator("[data-testid='stSidebar'] [data-testid='stTextArea'] textarea")
            area.fill(token)
            area.press("Control+Enter")
            b.wait_for_function(f"() => decodeURIComponent(location.search.replace(/\\+/g, ' ')).includes({json.dumps(token)})",
                                timeout=SLOW_MS)
            wait_for_app(b)
            assert not b.locator("[data-testid='stException']").all_inner_texts()
            assert not b.locator("[data-testid='stAlertContentError']").all_inner_texts()
        assert server.proc.poll() is None, "the server died"
    finally:
        ctx_a.close()
        ctx_b.close()
        server.stop()
    assert not marker.exists()
