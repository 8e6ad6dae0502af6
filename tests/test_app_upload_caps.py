"""Uploads are bounded (issue 27, finding 4): a session keeps MAX_UPLOADS_PER_SESSION uploads (the
oldest not on screen is released, with a note), and the kept bytes of all sessions stay under
SERVER_BYTES (the least recently used is released; its session is told to upload it again)."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from app_pages.ui import uploads
from rnnviz.checkpoint import checkpoint_bytes

from .conftest import REPO, tiny_model, upload


def _file(i: int) -> bytes:
    return checkpoint_bytes(tiny_model("lstm", 1, 8, seed=i))


@pytest.fixture
def app(tmp_path, monkeypatch):
    rnnviz.save_checkpoint(tiny_model("gru"), tmp_path / "timemachine-gru.safetensors")
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))
    st.cache_resource.clear()

    def start() -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        at.run()
        assert not at.exception
        return at
    return start


_upload = upload


def _uploads_in_picker(at: AppTest) -> list[str]:
    box = at.selectbox(key="ckpt")
    return [o for o in box.options if "(uploaded)" in box.format_func(o)]


def test_a_session_keeps_three_uploads_and_says_which_it_released(app):
    at = app()
    for i in range(5):
        _upload(at, f"m{i}.safetensors", _file(i))
        notes = " ".join(s.value for s in at.success)
        assert f"Loaded m{i}.safetensors" in notes
        if i >= uploads.MAX_UPLOADS_PER_SESSION:
            assert f"Released m{i - 3}.safetensors (uploaded)" in notes, notes
    assert len(_uploads_in_picker(at)) == uploads.MAX_UPLOADS_PER_SESSION
    held = uploads.upload_store().held_by(at.session_state["train_session"])
    assert len(held) == uploads.MAX_UPLOADS_PER_SESSION
    assert at.selectbox(key="ckpt").value == held[-1]          # the newest is on screen


def test_server_wide_bytes_release_the_least_recently_used(app, monkeypatch):
    size = len(_file(0))
    monkeypatch.setattr(uploads, "SERVER_BYTES", int(2.5 * size))
    a, b = app(), app()
    _upload(a, "a.safetensors", _file(10))
    _upload(b, "b1.safetensors", _file(11))
    _upload(b, "b2.safetensors", _file(12))                    # over the cap: a's file goes
    assert uploads.upload_store().nbytes() <= uploads.SERVER_BYTES
    a.text_area(key="text").set_value("the time").run()
    assert not a.exception, [e.value for e in a.exception]
    shown = " ".join(str(m.value) for kind in ("info", "warning", "error") for m in a.get(kind))
    assert "upload it again" in shown, shown
