"""The training path: data partitioning, validation loss, learning, resume, the CLI, corpora."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

import rnnviz
from rnnviz import corpora
from rnnviz.training import (TrainConfig, Trainer, build_parser, build_vocab, curves_path, epoch_batches,
                             evaluate_loss, parse_config, split_text, state_path, train)
from rnnviz.training.data import step_seed

from .reference import textbook_step

WORDS = ["the", "time", "machine", "traveller", "said", "and", "we", "all", "of", "a", "fourth",
         "dimension", "space", "is", "it", "not", "so", "that", "he", "was"]


def synthetic_text(n_words: int = 4000, seed: int = 0) -> str:
    """A text written by the test: words from a small list, in sentences (learnable structure)."""
    rng = random.Random(seed)
    out, sentence = [], []
    for _ in range(n_words):
        sentence.append(rng.choice(WORDS))
        if len(sentence) >= rng.randint(4, 9):
            out.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    return "\n".join(out) + "\n"


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(cell="lstm", hidden=32, layers=1, batch_size=8, num_steps=16, lr=1e-2,
                max_steps=40, eval_every=10, patience=0, seed=3, progress=False,
                out=str(tmp_path / "m.safetensors"))
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------- data
def test_split_is_last_ten_percent():
    text = "abcdefghij" * 10
    tr, va = split_text(text, 0.1)
    assert tr + va == text and len(va) == 10 and va == text[90:]


def test_vocab_most_frequent_first_and_min_count():
    v = build_vocab("aaabbc", min_count=2)
    assert v.tokens == ["<unk>", "a", "b"]


@pytest.mark.parametrize("partition", ["sequential", "random"])
def test_epoch_batches_follow_d2l(partition):
    ids = torch.arange(1000)
    batches = epoch_batches(ids, batch_size=4, num_steps=10, partition=partition, seed=1, epoch=0)
    for X, Y in batches:
        assert X.shape == Y.shape == (10, 4)
        assert torch.equal(Y, X + 1)                       # targets are the next character
        assert torch.equal(X[1:] - X[:-1], torch.ones(9, 4, dtype=torch.long))  # contiguous windows
    if partition == "sequential":                          # each stream continues where it stopped
        for (X0, _), (X1, _) in zip(batches, batches[1:]):
            assert torch.equal(X1[0], X0[-1] + 1)
    else:                                                  # disjoint subsequences
        starts = torch.cat([X[0] for X, _ in batches])
        assert starts.unique().numel() == starts.numel()
    again = epoch_batches(ids, 4, 10, partition, seed=1, epoch=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def _reference_stream_loss(model, ids, S):
    """Independent val loss: each stream stepped one character at a time with the cell equations."""
    n = ids.numel()
    L = (n - 1) // S
    total, count = 0.0, 0
    for s in range(S):
        seg = ids[s * L:s * L + L + 1]
        state = [(torch.zeros(model.config.hidden_size, dtype=torch.float64),
                  torch.zeros(model.config.hidden_size, dtype=torch.float64)) for _ in model.layers]
        for t in range(L):
            x = F.one_hot(seg[t], model.config.vocab_size).double()
            for li in range(len(model.layers)):
                p = {k: v.double() for k, v in model.textbook_params(li).items()}
                out = textbook_step(model.config.cell, p, x, *state[li])
                state[li] = (out["h"], out.get("c", state[li][1]))
                x = out["h"]
            logits = x @ model.output.weight.double().T + model.output.bias.double()
            total -= float(torch.log_softmax(logits, -1)[seg[t + 1]].detach())
            count += 1
    return total / count


@pytest.mark.parametrize("cell", ["lstm", "gru_d2l"])
def test_evaluate_loss_matches_independent_stepping(cell):
    model = rnnviz.build_model(rnnviz.ModelConfig(cell, 6, 2, ("<unk>", "a", "b", "c")), seed=1)
    ids = torch.randint(1, 4, (83,), generator=torch.Generator().manual_seed(0))
    got = evaluate_loss(model, ids, streams=4)
    assert got == pytest.approx(_reference_stream_loss(model, ids, 4), abs=1e-6)


# ------------------------------------------------------------------------------- learning
def test_short_training_run_makes_validation_loss_fall(tmp_path):
    text = synthetic_text()
    cfg = tiny_cfg(tmp_path, dropout=0.1)
    model, history = train(cfg, text)
    vals = history.val_losses
    V = model.config.vocab_size
    assert len(vals) == 4
    assert vals[-1] < vals[0] - 0.3, vals
    assert min(vals) < math.log(V) - 0.8             # far better than a uniform guess
    # the written checkpoint holds the best weights and an honest, recomputable val loss
    loaded = rnnviz.load_model(cfg.out)
    prov = loaded.provenance
    assert prov["val_loss"] == pytest.approx(min(vals), abs=1e-5)
    _, val = split_text(text, 0.1)
    recomputed = evaluate_loss(loaded, loaded.vocab.encode(val).ids)
    assert recomputed == pytest.approx(prov["val_loss"], abs=1e-5)
    assert prov["val_perplexity"] == pytest.approx(math.exp(prov["val_loss"]))
    for key in ("corpus", "corpus_sha256", "preprocessing", "steps", "train_loss", "seed", "date",
                "train_seconds", "threads", "chars_per_second"):
        assert key in prov
    assert loaded.config.dropout == 0.1
    assert not loaded.training
    rows = curves_path(cfg.out).read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + len(vals)


def test_training_does_not_touch_global_rng(tmp_path):
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    train(tiny_cfg(tmp_path, max_steps=3, eval_every=3, out=""), synthetic_text(500))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("partition,optimizer", [("sequential", "adam"), ("random", "sgd")])
def test_resume_equals_uninterrupted_run(tmp_path, partition, optimizer):
    text = synthetic_text(1500)
    kw = dict(partition=partition, optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0,
              lr=0.05 if optimizer == "sgd" else 1e-2, dropout=0.2, layers=2, lr_decay=0.5,
              eval_every=5, max_steps=20)
    full_model, full_hist = train(tiny_cfg(tmp_path, out=str(tmp_path / "full.safetensors"), **kw), text)

    part = tiny_cfg(tmp_path, out=str(tmp_path / "part.safetensors"), **{**kw, "max_steps": 10})
    train(part, text)
    with safe_open(str(state_path(part.out)), "pt") as fh:
        assert json.loads(fh.metadata()["rnnviz_trainstate"])["counters"]["step"] == 10
    resumed_model, resumed_hist = train(
        tiny_cfg(tmp_path, out=str(tmp_path / "resumed.safetensors"), resume=part.out, **kw), text)

    assert [r["step"] for r in resumed_hist.rows] == [5, 10, 15, 20]
    assert resumed_hist.val_losses == full_hist.val_losses
    latest_full = load_file(str(state_path(tmp_path / "full.safetensors")))
    latest_resumed = load_file(str(state_path(tmp_path / "resumed.safetensors")))
    assert latest_full.keys() == latest_resumed.keys()
    for k in latest_full:
        assert torch.equal(latest_full[k], latest_resumed[k]), k
    for (k, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), k
    assert rnnviz.load_model(tmp_path / "resumed.safetensors").provenance["total_steps"] == 20


def _reference_latest_weights(cfg: TrainConfig, text: str) -> dict[str, torch.Tensor]:
    """The documented procedure as a plain loop (sequential partition, Adam, no lr decay): the
    weights after cfg.max_steps steps."""
    train_text, _ = split_text(text, cfg.val_fraction)
    vocab = build_vocab(text, cfg.min_count)
    config = rnnviz.ModelConfig(cfg.cell, cfg.hidden, cfg.layers, tuple(vocab.tokens), dropout=cfg.dropout)
    model = rnnviz.build_model(config, seed=cfg.seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ids, step, epoch = vocab.encode(train_text).ids, 0, 0
    while step < cfg.max_steps:
        carry = None                                   # zero state at each epoch start
        for X, Y in epoch_batches(ids, cfg.batch_size, cfg.num_steps, "sequential", cfg.seed, epoch):
            if step == cfg.max_steps:
                break
            model.seed_dropout(step_seed(cfg.seed, step))         # dropout masks of this step
            logits, carry = model(X, carry)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip, foreach=True)
            opt.step()
            carry = [(h.detach(), None if c is None else c.detach()) for h, c in carry]
            step += 1
        epoch += 1
    return model.state_dict()


def test_training_is_the_documented_procedure_bit_for_bit(tmp_path):
    """(text, config, seed) fix the weights exactly: the latest weights the run writes to its
    .trainstate equal a plain loop's (two layers, dropout, three epochs of carried state)."""
    text = synthetic_text(600)
    cfg = tiny_cfg(tmp_path, layers=2, dropout=0.2, max_steps=45, eval_every=20)
    train(cfg, text)
    latest = load_file(str(state_path(cfg.out)))
    reference = _reference_latest_weights(cfg, text)
    assert len(latest) > len(reference)                # + optimiser moments and carried state
    for k, v in reference.items():
        assert torch.equal(latest[f"model.{k}"], v), k


def test_trainer_step_by_step_equals_one_run(tmp_path):
    text = synthetic_text(1500)
    kw = dict(dropout=0.2, layers=2, lr_decay=0.5, eval_every=5, max_steps=20, out="")
    model, history = train(tiny_cfg(tmp_path, **kw), text)

    tr = Trainer(tiny_cfg(tmp_path, **kw), text)
    torch.manual_seed(99)
    rng = torch.get_rng_state()
    state = tr.run(steps=7)
    assert state is tr.state and (state.step, state.stopped, len(state.val_losses)) == (7, "", 1)
    assert math.isfinite(tr.step()) and tr.state.step == 8
    assert torch.equal(rng, torch.get_rng_state())            # the caller's RNG is untouched
    assert tr.run().stopped == "max steps" and tr.state.step == 20
    assert tr.run(steps=5).step == 20                          # the limit still holds
    assert tr.state.val_losses == history.val_losses and len(tr.state.train_losses) == 4
    best = tr.checkpoint(tmp_path / "best.safetensors")
    assert rnnviz.load_model(best).provenance["val_loss"] == tr.state.best_val
    assert tr.state.best_val == pytest.approx(min(history.val_losses), abs=1e-6)
    stepped_model, stepped_history = tr.finish()
    assert stepped_model is tr.model and stepped_history.val_losses == history.val_losses
    for (k, a), b in zip(model.state_dict().items(), stepped_model.state_dict().values()):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------------------- CLI
def test_cli_flags_come_from_the_dataclass():
    cfg = parse_config(["--text", "x.txt", "--cell", "gru", "--hidden", "64", "--layers", "2",
                        "--preprocessing", "d2l", "--partition", "random", "--optimizer", "sgd",
                        "--max-minutes", "1.5", "--no-progress", "--device", "cpu"])
    assert (cfg.cell, cfg.hidden, cfg.layers, cfg.preprocessing, cfg.partition, cfg.optimizer,
            cfg.max_minutes, cfg.progress, cfg.device) == ("gru", 64, 2, "d2l", "random", "sgd",
                                                           1.5, False, "cpu")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cell", "transformer"])


def test_trainer_and_cli_default_to_one_thread_and_the_flag_raises_it(tmp_path):
    """One torch thread unless asked (as the app runs): the default of the config, of the CLI and of
    a Trainer built from them; ``--threads 2`` gives two."""
    assert TrainConfig().threads == 1 and parse_config([]).threads == 1
    assert parse_config(["--threads", "2"]).threads == 2
    text = synthetic_text(300)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Trainer(tiny_cfg(tmp_path, out="", max_steps=1), text)
        assert torch.get_num_threads() == 1
        Trainer(tiny_cfg(tmp_path, out="", max_steps=1, threads=2), text)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_cli_corpus_folder_defaults_to_the_environment(monkeypatch, tmp_path):
    """--corpora (where named corpora are looked up) takes RNNVIZ_CORPORA as its default; the
    library itself never reads the environment."""
    from rnnviz.corpora import CORPORA_DIR
    from rnnviz.training.cli import parse_args
    monkeypatch.delenv("RNNVIZ_CORPORA", raising=False)
    assert parse_args([])[1] == str(CORPORA_DIR)
    monkeypatch.setenv("RNNVIZ_CORPORA", str(tmp_path))
    assert parse_args([])[1] == str(tmp_path)
    assert parse_args(["--corpora", "elsewhere"])[1] == "elsewhere"


def test_cli_main_writes_checkpoint_and_curves(tmp_path):
    from rnnviz.training import main
    src = tmp_path / "tiny.txt"
    src.write_text(synthetic_text(600), encoding="utf-8")
    out = tmp_path / "cli.safetensors"
    main(["--text", str(src), "--hidden", "16", "--batch-size", "4", "--num-steps", "8",
          "--max-steps", "6", "--eval-every", "3", "--no-progress", "--out", str(out)])
    prov = rnnviz.load_model(out).provenance
    assert prov["command"][-1] == str(out) and "--hidden" in prov["command"]
    assert prov["corpus"] == "tiny" and prov["total_steps"] == 6
    assert curves_path(out).is_file()


# ------------------------------------------------------------------------------- corpora
def test_corpora_folder_argument(tmp_path, monkeypatch):
    (tmp_path / "mini.txt").write_text("abc\r\ndef", encoding="utf-8", newline="")
    monkeypatch.setenv("RNNVIZ_CORPORA", str(tmp_path / "not-read"))   # the library ignores it
    c = corpora.load_corpus("mini", folder=tmp_path)
    assert c.text == "abc\r\ndef"                              # bytes kept exactly
    import hashlib
    assert c.sha256 == hashlib.sha256(b"abc\r\ndef").hexdigest()
    with pytest.raises(corpora.CorpusNotFound):
        corpora.load_corpus("absent", folder=tmp_path)


def test_default_corpora_dir_is_beside_the_repo(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(Path("/nonexistent-cache")))
    assert corpora.CORPORA_DIR == corpora.REPO_ROOT.parent / "shared" / "corpora"
    assert corpora.corpus_path("mini") == corpora.CORPORA_DIR / "mini.txt"
    assert corpora.cache_dir() == Path("/nonexistent-cache") / "rnnviz"


def test_python_corpus_is_deterministic_and_capped():
    a = corpora.python_stdlib_corpus(max_chars=50_000)
    b = corpora.python_stdlib_corpus(max_chars=50_000)
    assert a.text == b.text and a.sha256 == b.sha256
    assert 0 < len(a.text) <= 50_000 + 1
    files = corpora.python_stdlib_files()
    first = files[0].read_text(encoding="utf-8").replace("\r\n", "\n").rstrip()
    assert a.text.startswith(first)
    assert all("site-packages" not in p.parts and "test" not in p.parts for p in files)
