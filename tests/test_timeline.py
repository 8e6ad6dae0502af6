"""The training timeline: log-spaced snapshots written by the Trainer, stored compactly and validated."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

import rnnviz
from rnnviz import CheckpointError, ModelConfig, build_model, save_checkpoint
from rnnviz.timeline import decode_delta, encode_delta, save_timeline, timeline_bytes, timeline_path
from rnnviz.training import Trainer, evaluate_loss, split_text
from rnnviz.training.timeline import log_steps, pick_nearest

from .test_train import synthetic_text, tiny_cfg


# ------------------------------------------------------------------------------- spacing
@pytest.mark.parametrize("total,n", [(100, 16), (5000, 16), (123_457, 24), (20, 16), (16, 16)])
def test_log_steps_include_first_and_last_and_are_log_spaced(total, n):
    steps = log_steps(total, n)
    assert steps[0] == 0 and steps[-1] == total
    assert len(steps) == n and steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    # geometric where integers allow: each step is the rounded target total**(j/(n-2)), or the
    # smallest integer after its predecessor where the targets crowd below 1 apart
    for j, s in enumerate(steps[1:]):
        target = total ** (j / (n - 2))
        assert s == round(target) or s == steps[j] + 1, (j, s, target)
    if total > 1000:
        ratios = [b / a for a, b in zip(steps[-6:], steps[-5:])]
        assert max(ratios) / min(ratios) < 1.05            # constant ratio at the end
        assert gaps[-1] > 100 * gaps[0]                    # early steps far denser


def test_log_steps_short_run_keeps_every_step():
    assert log_steps(5, 16) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        log_steps(10, 1)


def test_pick_nearest_uses_each_candidate_once():
    assert pick_nearest([0, 1, 2, 4, 8, 16, 32], [0, 3, 3, 30]) == [0, 2, 4, 32]


# ------------------------------------------------------------------------------- encoding
def test_int8_row_delta_error_is_bounded():
    g = torch.Generator().manual_seed(0)
    final = torch.randn(64, 20, generator=g)
    snap = final + 0.3 * torch.randn(64, 20, generator=g)
    q, scale = encode_delta(snap, final)
    assert q.dtype == torch.int8 and scale.dtype == torch.float16 and scale.shape == (64,)
    back = decode_delta(q, scale, final)
    bound = (snap - final).abs().amax(dim=1, keepdim=True) * (1 / 254 + 2e-3)
    assert ((back - snap).abs() <= bound + 1e-7).all()
    same_q, same_s = encode_delta(final[0], final[0])          # 1-D, zero delta: exact
    assert torch.equal(decode_delta(same_q, same_s, final[0]), final[0])


def _lstm_256() -> rnnviz.CharRNN:
    tokens = ("<unk>", *"abcdefghijklmnopqrstuvwxyz ")
    model = build_model(ModelConfig("lstm", 256, 1, tokens, "d2l"), seed=0)
    model.provenance = {"steps": 5000}
    return model


def test_file_of_a_1x256_lstm_with_16_snapshots_is_at_most_5_mb():
    model = _lstm_256()
    g = torch.Generator().manual_seed(1)
    snaps = [(s, {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()})
             for s in log_steps(5000, 16)[:-1]]
    data = timeline_bytes(model, snaps)
    assert len(data) <= 5_000_000, len(data)


# ------------------------------------------------------------------------------- Trainer
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny 2-layer GRU trained 60 steps with a 16-snapshot timeline, plus its validation ids."""
    tmp = tmp_path_factory.mktemp("timeline")
    text = synthetic_text(2500)
    cfg = tiny_cfg(tmp, cell="gru", hidden=16, layers=2, max_steps=60, eval_every=10, timeline=16)
    trainer = Trainer(cfg, text)
    trainer.run()
    model, _ = trainer.finish()
    _, val = split_text(text, cfg.val_fraction)
    return cfg, model, model.vocab.encode(val).ids


def test_trainer_writes_a_timeline_from_step_0_to_the_checkpoint(trained):
    cfg, model, _ = trained
    assert timeline_path(cfg.out).is_file() and rnnviz.has_timeline(cfg.out)
    snaps = rnnviz.load_timeline(cfg.out)
    steps = [s for s, _ in snaps]
    ckpt = rnnviz.load_model(cfg.out)
    assert len(snaps) == 16 and steps[0] == 0 and steps == sorted(set(steps))
    assert steps[-1] == ckpt.provenance["steps"]
    for _, m in snaps:
        assert not m.training and all(p.dtype == torch.float32 and not p.requires_grad
                                      for p in m.parameters())
    # the last snapshot is the checkpoint; the first is the seeded initialisation
    for k, v in ckpt.state_dict().items():
        assert torch.allclose(snaps[-1].model.state_dict()[k], v, rtol=1e-3, atol=0)
    init, final = build_model(ckpt.config, seed=cfg.seed).state_dict(), ckpt.state_dict()

    def rows(t):
        return t.reshape(1, -1) if t.dim() < 2 else t
    for k, w0 in init.items():
        bound = rows(w0 - final[k]).abs().amax(dim=1) * (1 / 254 + 2e-3) + 1e-6
        err = rows(snaps[0].model.state_dict()[k] - w0).abs().amax(dim=1)
        assert (err <= bound).all(), k


def test_held_out_loss_at_each_snapshot(trained):
    cfg, _, val_ids = trained
    snaps = rnnviz.load_timeline(cfg.out)
    losses = [evaluate_loss(m, val_ids) for _, m in snaps]
    stored = [m.provenance["timeline_val_loss"] for _, m in snaps]
    assert stored == pytest.approx(losses, abs=1e-6)
    V = snaps[0].model.config.vocab_size
    assert losses[0] == pytest.approx(math.log(V), abs=0.3)          # untrained: near uniform
    assert losses[-1] == pytest.approx(snaps[-1].model.provenance["val_loss"], abs=1e-5)
    assert losses[-1] < losses[0] - 0.5


def test_timeline_can_be_turned_off(tmp_path):
    cfg = tiny_cfg(tmp_path, max_steps=10, eval_every=5, timeline=0)
    trainer = Trainer(cfg, synthetic_text(800))
    trainer.run()
    trainer.finish()
    assert not timeline_path(cfg.out).exists()
    with pytest.raises(CheckpointError, match="No training timeline"):
        rnnviz.load_timeline(cfg.out)


# ------------------------------------------------------------------------------- hostile files
def _small(tmp_path):
    model = build_model(ModelConfig("lstm", 4, 2, ("<unk>", "a", "b")), seed=0)
    model.provenance = {"steps": 9}
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors", model.provenance)
    snaps = [(s, {k: v + 0.5 for k, v in model.state_dict().items()}) for s in (0, 1, 3)]
    return rnnviz.load_model(ckpt), snaps, ckpt


def _with_meta(data: bytes, **changes) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["rnnviz"])
    meta.update(changes)
    header["__metadata__"]["rnnviz"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def _nan_scale(data: bytes) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    key = next(k for k in header if k.endswith(".scale"))
    begin = 8 + n + header[key]["data_offsets"][0]
    return data[:begin] + b"\x00\x7e" + data[begin + 2:]        # float16 NaN


HOSTILE = {
    "truncated": (lambda d: d[:len(d) // 2], "truncated|damaged|only part"),
    "pickle": (lambda d: b"\x80\x04" + d[2:], "not a safetensors|pickle"),
    "checkpoint schema": (lambda d: _with_meta(d, schema="rnnviz.checkpoint/1"), "schema"),
    "steps not increasing": (lambda d: _with_meta(d, steps=[0, 3, 1, 9]), "steps"),
    "steps not integers": (lambda d: _with_meta(d, steps=[0, 1, "3", 9]), "steps"),
    "one step too few": (lambda d: _with_meta(d, steps=[0, 1, 9], val_losses=[None] * 3), "tensors"),
    "losses wrong length": (lambda d: _with_meta(d, val_losses=[1.0]), "val_losses"),
    "loss not finite": (lambda d: _with_meta(d, val_losses=[1e999, None, None, None]), "val_losses|JSON"),
    "other digest": (lambda d: _with_meta(d, checkpoint_digest="0" * 16), "other weights"),
    "other config": (lambda d: _with_meta(d, config={"cell": "gru", "hidden_size": 4, "num_layers": 2,
                                                     "tokens": ["<unk>", "a", "b"]}), "config"),
    "nan scale": (_nan_scale, "NaN"),
    "garbage": (lambda d: b"\xff" * len(d), "safetensors"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_corrupt_or_hostile_timeline_is_refused(tmp_path, case):
    model, snaps, ckpt = _small(tmp_path)
    path = save_timeline(model, snaps, timeline_path(ckpt))
    assert [s for s, _ in rnnviz.load_timeline(ckpt)] == [0, 1, 3, 9]
    mutate, message = HOSTILE[case]
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        rnnviz.load_timeline(path)


def test_a_replaced_checkpoint_makes_its_old_timeline_refused(tmp_path):
    model, snaps, ckpt = _small(tmp_path)
    save_timeline(model, snaps, timeline_path(ckpt))
    other = build_model(model.config, seed=5)
    save_checkpoint(other, ckpt, {"steps": 9})
    with pytest.raises(CheckpointError, match="other weights"):
        rnnviz.load_timeline(ckpt)


def test_a_shipped_name_is_looked_up_in_the_given_folder(tmp_path):
    model, snaps, ckpt = _small(tmp_path)
    save_timeline(model, snaps, timeline_path(ckpt))
    loaded = rnnviz.load_timeline("m", tmp_path)
    assert [s for s, _ in loaded] == [0, 1, 3, 9] and loaded[0].model.name == "m"
    assert rnnviz.has_timeline("m", tmp_path) and not rnnviz.has_timeline("m")


def test_a_resumed_run_keeps_the_early_snapshots(tmp_path):
    text = synthetic_text(1500)
    first = tiny_cfg(tmp_path, max_steps=20, eval_every=10, timeline=8)
    trainer = Trainer(first, text)
    trainer.run()
    trainer.finish()
    early = [s for s, _ in rnnviz.load_timeline(first.out)]
    second = tiny_cfg(tmp_path, max_steps=40, eval_every=10, timeline=8, resume=first.out,
                      out=str(tmp_path / "resumed.safetensors"))
    trainer = Trainer(second, text)
    trainer.run()
    trainer.finish()
    steps = [s for s, _ in rnnviz.load_timeline(second.out)]
    assert steps[0] == 0 and 1 in steps and steps[-1] == rnnviz.load_model(second.out).provenance["steps"]
    assert len(steps) == 8 and set(steps[:3]) <= set(early)


@pytest.mark.parametrize("path", sorted(rnnviz.checkpoint.CHECKPOINT_DIR.glob("*.timeline")), ids=lambda p: p.stem)
def test_every_shipped_timeline_loads_and_ends_at_its_checkpoint(path):
    snaps = rnnviz.load_timeline(path)
    ckpt = rnnviz.load_model(path.with_suffix(".safetensors"))
    steps = [s for s, _ in snaps]
    assert steps[0] == 0 and steps[-1] == ckpt.provenance["steps"] and 16 <= len(steps) <= 24
    losses = [m.provenance["timeline_val_loss"] for _, m in snaps]
    assert all(isinstance(v, float) for v in losses) and losses[-1] < losses[0] - 1.0
    assert losses[-1] == pytest.approx(ckpt.provenance["val_loss"], abs=1e-4)
