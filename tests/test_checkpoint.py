"""Checkpoint round trip and refusal of malformed files (the hostile-file suite goes further)."""

import json
import struct

import pytest
import torch
from safetensors.torch import save as st_save

import rnnviz
from rnnviz import CheckpointError, load_model, load_model_bytes, save_checkpoint, trace
from rnnviz.checkpoint import SCHEMA, list_checkpoints

from .conftest import SMALL_TEXT, tiny_model


def _bytes_of(model, meta=None, tensors=None):
    meta = meta or {"schema": SCHEMA, "config": model.config.to_dict(), "provenance": {}}
    tensors = tensors if tensors is not None else {k: v.contiguous() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata={"rnnviz": json.dumps(meta)})


def test_round_trip_preserves_weights_config_and_provenance(tmp_path, any_model):
    prov = {"corpus": "test", "val_loss": 1.23, "command": "python -m rnnviz.training ..."}
    path = save_checkpoint(any_model, tmp_path / "m.safetensors", prov)
    loaded = load_model(path)
    assert loaded.config == any_model.config
    assert loaded.provenance == prov and loaded.name == "m.safetensors"
    for (ka, a), (kb, b) in zip(any_model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(a, b)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(trace(loaded, SMALL_TEXT).probs, trace(any_model, SMALL_TEXT).probs)


def test_shipped_names_from_a_folder_argument(tmp_path, monkeypatch):
    model = tiny_model("gru")
    save_checkpoint(model, tmp_path / "demo-gru.safetensors", {"corpus": "x"})
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))       # the library never reads it
    assert "demo-gru" not in [i.name for i in list_checkpoints()]
    infos = list_checkpoints(tmp_path)
    assert [i.name for i in infos] == ["demo-gru"] and infos[0].config.cell == "gru"
    assert load_model("demo-gru", tmp_path).name == "demo-gru"
    with pytest.raises(CheckpointError, match="No shipped checkpoint.*demo-gru"):
        load_model("nope", tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/rnnviz_pwned_marker",))


@pytest.mark.parametrize("case", ["truncated", "shape", "nan", "missing", "pickle", "zip",
                                  "header_huge", "header_past_eof", "no_meta", "bad_dtype", "config"])
def test_malformed_files_raise_checkpoint_error_and_run_no_code(case, tmp_path):
    import pickle
    import zipfile
    import io
    marker = __import__("pathlib").Path("/tmp/rnnviz_pwned_marker")
    marker.unlink(missing_ok=True)
    model = tiny_model("lstm")
    good = _bytes_of(model)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if case == "truncated":
        data = good[: len(good) - 10]
    elif case == "shape":
        sd["output.bias"] = torch.zeros(3)
        data = _bytes_of(model, tensors=sd)
    elif case == "nan":
        sd["output.bias"] = sd["output.bias"].clone()
        sd["output.bias"][0] = float("nan")
        data = _bytes_of(model, tensors=sd)
    elif case == "missing":
        del sd["output.bias"]
        data = _bytes_of(model, tensors=sd)
    elif case == "pickle":
        data = pickle.dumps(_Boom())
    elif case == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps(_Boom()))
        data = buf.getvalue()
    elif case == "header_huge":
        data = struct.pack("<Q", 2**40) + b"{}"
    elif case == "header_past_eof":
        data = struct.pack("<Q", 500) + b"{}"
    elif case == "no_meta":
        data = st_save(sd)
    elif case == "bad_dtype":
        sd["output.bias"] = sd["output.bias"].to(torch.int32)
        data = _bytes_of(model, tensors=sd)
    else:
        cfg = model.config.to_dict()
        cfg["hidden_size"] = 10**9
        data = _bytes_of(model, meta={"schema": SCHEMA, "config": cfg})
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert len(str(err.value)) > 20
    with pytest.raises(CheckpointError):
        load_model_bytes(data)
    assert not marker.exists(), "loading a checkpoint ran code"


def test_size_cap(tmp_path, monkeypatch):
    model = tiny_model("rnn_tanh")
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    monkeypatch.setattr(rnnviz.checkpoint, "MAX_CHECKPOINT_BYTES", path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match="limit"):
        load_model(path)
