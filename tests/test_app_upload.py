"""The sidebar's checkpoint upload under AppTest (issue 16 item 2): a valid upload is selected at
once, "Loaded …" shows once, and a link naming an upload that is not here says so."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import rnnviz
from tests import hostile
from tests.conftest import REPO, tiny_model, upload


@pytest.fixture
def app(tmp_path, monkeypatch):
    rnnviz.save_checkpoint(tiny_model("lstm", 2), tmp_path / "timemachine-lstm.safetensors")
    rnnviz.save_checkpoint(tiny_model("gru"), tmp_path / "timemachine-gru.safetensors")
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))

    def start(**params) -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return start


_upload = upload


def test_valid_upload_is_selected_at_once_and_its_message_goes(app):
    at = _upload(app(), "mine.safetensors", hostile.valid_checkpoint())
    box = at.selectbox(key="ckpt")
    assert box.value.startswith("upload:"), box.value
    assert "mine.safetensors (uploaded)" in [box.format_func(o) for o in box.options]
    assert [s.value for s in at.success if "mine.safetensors" in s.value], "Loaded … shown once"
    assert at.query_params["ckpt"] == box.value          # the link names the upload
    at.text_area(key="text").set_value("another text").run()   # any later run: the message is gone
    assert not [s for s in at.success if "Loaded" in s.value]
    assert at.selectbox(key="ckpt").value == box.value
    at.selectbox(key="ckpt").set_value("timemachine-gru").run()  # shipped ones stay pickable
    assert at.selectbox(key="ckpt").value == "timemachine-gru" and not at.exception


def test_refused_upload_keeps_the_choice_and_says_why(app):
    at = _upload(app(), "junk.safetensors", b"just some text, not a model\n" * 10)
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Upload refused: This is not a safetensors file")


def test_link_naming_a_missing_upload_says_so(app):
    at = app(ckpt="upload:0123456789abcdef")
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    warnings = [w.value for w in at.warning]
    assert any("uploaded model" in w and "not on this server" in w and "timemachine-lstm" in w
               for w in warnings), warnings
    at.selectbox(key="ckpt").set_value("timemachine-gru").run()   # once acted on, it goes
    assert not [w for w in at.warning if "uploaded model" in w.value]


def test_link_naming_an_unknown_checkpoint_says_so(app):
    at = app(ckpt="no-such-model")
    assert at.selectbox(key="ckpt").value == "timemachine-lstm"
    assert any("no-such-model" in w.value and "not on this server" in w.value for w in at.warning)
