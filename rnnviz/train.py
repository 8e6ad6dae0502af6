"""Train a character-level RNN and write a shippable checkpoint.

    python -m rnnviz.train --corpus timemachine --preprocessing d2l --cell lstm --hidden 256 \\
        --out checkpoints/timemachine-lstm.safetensors

(``--text FILE`` trains on any UTF-8 file instead of a named corpus, see :mod:`rnnviz.corpora`.)

Data
----
The text is loaded, preprocessed (``--preprocessing none|d2l``, see :func:`rnnviz.vocab.preprocess`)
and split: the **first 90 %** of the characters (``split = int(len(text) * (1 - val_fraction))``)
train, the **last 10 %** (``text[split:]``) is held out for validation. The vocabulary is built
from the whole preprocessed text (most frequent first, as d2l); characters seen fewer than
``--min-count`` times map to ``<unk>``.

Minibatches follow d2l §9.3 (truncated BPTT over ``--num-steps`` characters, shapes (T, B)):

* ``sequential``: each epoch drops a random offset in ``[0, num_steps)``, cuts the rest into
  ``batch_size`` contiguous streams and walks them window by window; the hidden state is carried
  from one window to the next (detached), and starts at zero each epoch.
* ``random``: each epoch drops a random offset, cuts the rest into subsequences of ``num_steps``
  characters and shuffles them; every minibatch starts from a zero state.

Validation loss (``val_loss`` in every checkpoint) — exactly :func:`evaluate_loss`
-------------------------------------------------------------------------------------
Let ``ids`` be the validation text encoded with the model's vocabulary and ``n = len(ids)``. With
``S = VAL_STREAMS = 16`` (or ``S = 1`` when ``n - 1 < 16``) and ``L = (n - 1) // S``, stream ``s``
reads ``ids[s*L : s*L + L]`` starting from an all-zero state and predicts ``ids[s*L+1 : s*L+L+1]``.
``val_loss`` is the mean over all ``S*L`` predictions of ``-log softmax(O_t)[next char]`` in nats
(no dropout; the last ``n - 1 - S*L < S`` characters are not predicted). ``val_perplexity`` is
``exp(val_loss)``; bits/char is ``val_loss / ln 2``.

Optimisation
------------
Adam (default) or SGD (``--momentum``), global gradient-norm clipping (``--clip``), dropout between
layers and before the output layer (``--dropout``), evaluation every ``--eval-every`` steps (0: once
per epoch), learning-rate decay by ``--lr-decay`` whenever validation loss does not improve, early
stopping after ``--patience`` evaluations without improvement. The checkpoint always holds the
**best** weights seen (lowest validation loss). ``--max-steps``, ``--max-epochs`` and
``--max-minutes`` (wall clock of the whole run) also stop training.

Reproducibility and resume
--------------------------
All randomness comes from ``--seed``: the initial weights (``build_model(config, seed)``), each
epoch's offset/shuffle (a generator seeded from (seed, epoch)) and the dropout masks of each step
(the global RNG is re-seeded from (seed, step) before every step, inside ``fork_rng`` so the
caller's RNG is untouched). A run's latest state is written next to the checkpoint as
``<checkpoint>.trainstate`` (a safetensors file, no pickle): the latest weights, the optimiser
state (Adam moments / SGD momentum), the carried BPTT state, the current learning rate, the step /
epoch / position counters, the early-stopping counters, the running train-loss sums and the loss
history. ``--resume CKPT`` restores all of it (and the best weights from CKPT itself), so a run
stopped at step k and resumed to step N gives the same weights as an uninterrupted run to step N
(on the same device and thread count). The stopping limits and ``--out`` come from the new command.

Outputs
-------
``--out X.safetensors`` (best weights + config + provenance, via :func:`rnnviz.save_checkpoint`),
``X.curves.csv`` (one row per evaluation: step, epoch, chars, seconds, lr, train_loss, val_loss),
``X.trainstate`` (for ``--resume``; not shipped) and, from the command line, ``X.units.json`` (the
unit finder's per-unit statistics on the held-out sample, :mod:`rnnviz.units.stats`, so the Units
view ranks units without the corpus).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save_file as st_save_file

from .checkpoint import load_model, save_checkpoint
from .corpora import PYTHON_CORPUS_MAX_CHARS, Corpus, load_corpus, read_text_file, sha256_text
from .model import CELLS, CharRNN, ModelConfig, build_model
from .vocab import PREPROCESSING, UNK, Vocab, preprocess

VAL_STREAMS = 16
_EVAL_CHUNK = 1024


# =============================================================================== config
def _opt(help: str, choices=None, **kw):
    return field(metadata={"help": help, "choices": choices}, **kw)


@dataclass
class TrainConfig:
    """Every training option; the CLI flags are these fields with ``-`` for ``_``."""

    text: str = _opt("train on this UTF-8 text file", default="")
    corpus: str = _opt("or a named corpus: timemachine, tinyshakespeare, python-stdlib", default="")
    out: str = _opt("checkpoint path to write (.safetensors)", default="model.safetensors")
    preprocessing: str = _opt("text cleaning", PREPROCESSING, default="none")
    min_count: int = _opt("characters seen fewer times map to <unk>", default=1)
    python_max_chars: int = _opt("size cap of the python-stdlib corpus", default=PYTHON_CORPUS_MAX_CHARS)
    val_fraction: float = _opt("held-out fraction at the end of the text", default=0.1)
    cell: str = _opt("recurrent cell", CELLS, default="lstm")
    hidden: int = _opt("hidden size h", default=256)
    layers: int = _opt("stacked layers", default=1)
    dropout: float = _opt("dropout between layers and before the output layer", default=0.0)
    num_steps: int = _opt("truncated-BPTT length T", default=64)
    batch_size: int = _opt("minibatch size B", default=32)
    partition: str = _opt("minibatch partitioning (d2l)", ("sequential", "random"), default="sequential")
    optimizer: str = _opt("optimiser", ("adam", "sgd"), default="adam")
    lr: float = _opt("learning rate", default=2e-3)
    momentum: float = _opt("SGD momentum", default=0.0)
    weight_decay: float = _opt("L2 weight decay", default=0.0)
    clip: float = _opt("global gradient-norm clip (0: off)", default=1.0)
    lr_decay: float = _opt("multiply lr by this when val loss does not improve", default=1.0)
    max_epochs: int = _opt("stop after this many epochs", default=50)
    max_steps: int = _opt("stop after this many optimiser steps (0: no limit)", default=0)
    max_minutes: float = _opt("stop after this many minutes of wall clock (0: no limit)", default=0.0)
    eval_every: int = _opt("evaluate every N steps (0: once per epoch)", default=0)
    patience: int = _opt("early stop after N evaluations without improvement (0: never)", default=5)
    seed: int = _opt("random seed", default=0)
    device: str = _opt("device", ("auto", "cpu", "cuda"), default="auto")
    threads: int = _opt("torch CPU threads (0: torch's default)", default=0)
    resume: str = _opt("resume from this checkpoint (and its .trainstate)", default="")
    progress: bool = _opt("show a tqdm progress bar", default=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# =============================================================================== data
def build_vocab(text: str, min_count: int = 1) -> Vocab:
    """``<unk>`` + every character seen ≥ min_count times, most frequent first (ties: code point)."""
    counts = Counter(text)
    chars = sorted((c for c, k in counts.items() if k >= min_count), key=lambda c: (-counts[c], ord(c)))
    return Vocab([UNK, *chars])


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): ``split = int(len(text) * (1 - val_fraction))``; val is ``text[split:]``."""
    split = int(len(text) * (1.0 - val_fraction))
    return text[:split], text[split:]


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def _step_seed(seed: int, step: int) -> int:
    return (seed * 998_244_353 + step * 104_729 + 1) % (2**63)


def epoch_batches(ids: torch.Tensor, batch_size: int, num_steps: int, partition: str,
                  seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The minibatches (X, Y), each (T, B) long, of one epoch (d2l §9.3, deterministic)."""
    g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    offset = int(torch.randint(0, num_steps, (1,), generator=g))
    out = []
    if partition == "sequential":
        n = ((ids.numel() - offset - 1) // batch_size) * batch_size
        xs = ids[offset:offset + n].reshape(batch_size, -1)
        ys = ids[offset + 1:offset + 1 + n].reshape(batch_size, -1)
        for i in range(xs.shape[1] // num_steps):
            sl = slice(i * num_steps, (i + 1) * num_steps)
            out.append((xs[:, sl].T.contiguous(), ys[:, sl].T.contiguous()))
    elif partition == "random":
        corpus = ids[offset:]
        n_sub = (corpus.numel() - 1) // num_steps
        starts = torch.arange(0, n_sub * num_steps, num_steps)[torch.randperm(n_sub, generator=g)]
        idx = torch.arange(num_steps)
        for i in range(n_sub // batch_size):
            s = starts[i * batch_size:(i + 1) * batch_size]
            pos = s[None, :] + idx[:, None]                    # (T, B)
            out.append((corpus[pos], corpus[pos + 1]))
    else:
        raise ValueError(f"unknown partition {partition!r}")
    if not out:
        raise ValueError(f"the training text ({ids.numel()} chars) is too short for "
                         f"batch_size={batch_size} × num_steps={num_steps}")
    return out


# =============================================================================== evaluation
def _layers_no_dropout(model: CharRNN, x: torch.Tensor, state):
    """Run the recurrent layers without dropout whatever the model's mode; returns (top, state)."""
    new_state = []
    inp = x
    for index, layer in enumerate(model.layers):
        h0, c0 = state[index]
        if model.is_lstm:
            out, (hn, cn) = layer(inp, (h0.unsqueeze(0), c0.unsqueeze(0)))
            new_state.append((hn[0], cn[0]))
        else:
            out, hn = layer(inp, h0.unsqueeze(0))
            new_state.append((hn[0], None))
        inp = out
    return inp, new_state


@torch.no_grad()
def evaluate_loss(model: CharRNN, ids: torch.Tensor, streams: int = VAL_STREAMS) -> float:
    """Mean nats/char on ``ids`` by the documented procedure (module docstring). Never mutates."""
    ids = ids.reshape(-1)
    n = ids.numel()
    if n < 2:
        raise ValueError("need at least 2 characters to evaluate")
    S = streams if n - 1 >= streams else 1
    L = (n - 1) // S
    dev = model.output.weight.device
    x_all = ids[:S * L].reshape(S, L).T.to(dev)                  # (L, S)
    y_all = ids[1:S * L + 1].reshape(S, L).T.to(dev)
    state = model.zero_state(S)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for start in range(0, L, _EVAL_CHUNK):
        x = x_all[start:start + _EVAL_CHUNK]
        y = y_all[start:start + _EVAL_CHUNK]
        top, state = _layers_no_dropout(model, model.one_hot(x), state)
        logits = model.output(top)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1),
                                 reduction="sum")
    return float(total) / (S * L)


# =============================================================================== one step
def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def train_step(model: CharRNN, optimizer: torch.optim.Optimizer, X: torch.Tensor, Y: torch.Tensor,
               state, clip: float):
    """One truncated-BPTT update on (T, B) ids. Returns (loss tensor, final state, detached)."""
    logits, state = model(X, state)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
    optimizer.step()
    return loss.detach(), [(h.detach(), None if c is None else c.detach()) for h, c in state]


# =============================================================================== train-state file
def state_path(checkpoint: str | os.PathLike) -> Path:
    return Path(str(checkpoint) + ".trainstate")


def _save_state(path: Path, model, optimizer, carry, counters: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_sd = optimizer.state_dict()
    for idx, st in opt_sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{key}"] = val.detach().cpu().contiguous()
    if carry is not None:
        for layer, (h, c) in enumerate(carry):
            tensors[f"carry.{layer}.h"] = h.detach().cpu().contiguous()
            if c is not None:
                tensors[f"carry.{layer}.c"] = c.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_sd["param_groups"]]
    meta = {"counters": counters, "param_groups": groups}
    tmp = path.with_name(path.name + ".tmp")
    st_save_file(tensors, str(tmp), metadata={"rnnviz_trainstate": json.dumps(meta)})
    os.replace(tmp, path)


def _load_state(path: Path, model, optimizer, device):
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["rnnviz_trainstate"])
    tensors = st_load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    sd = optimizer.state_dict()
    state: dict = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = val
    for g, saved in zip(sd["param_groups"], meta["param_groups"]):
        g.update(saved)
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
    carry = None
    layers = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("carry.")})
    if layers:
        carry = [(tensors[f"carry.{i}.h"].to(device),
                  tensors[f"carry.{i}.c"].to(device) if f"carry.{i}.c" in tensors else None)
                 for i in layers]
    return meta["counters"], carry


# =============================================================================== the loop
@dataclass
class History:
    """One row per evaluation (see ``rows``), plus the run summary once finished."""

    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def val_losses(self) -> list[float]:
        return [r["val_loss"] for r in self.rows]

    @property
    def train_losses(self) -> list[float]:
        return [r["train_loss"] for r in self.rows]


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    return torch.device(name)


def load_training_text(cfg: TrainConfig) -> Corpus:
    """The raw corpus named by ``cfg.corpus`` or read from ``cfg.text``."""
    if cfg.corpus:
        return load_corpus(cfg.corpus, python_max_chars=cfg.python_max_chars)
    if cfg.text:
        text = read_text_file(cfg.text)
        return Corpus(Path(cfg.text).stem, text, sha256_text(text), str(cfg.text), {})
    raise ValueError("give --text FILE or --corpus NAME")


def _write_curves(path: Path, rows: list[dict]) -> None:
    cols = ["step", "epoch", "chars", "seconds", "lr", "train_loss", "val_loss"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def curves_path(checkpoint: str | os.PathLike) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".curves.csv")


def train(cfg: TrainConfig, text: str | None = None, *, corpus: Corpus | None = None,
          argv: list[str] | None = None) -> tuple[CharRNN, History]:
    """Train per ``cfg``; returns (best model in eval mode, history). Writes ``cfg.out`` if set.

    text: the raw training text (overrides cfg.text/cfg.corpus; name "text", for tests).
    """
    if text is not None:
        corpus = Corpus(cfg.corpus or (Path(cfg.text).stem if cfg.text else "text"), text,
                        sha256_text(text), "in-memory", {})
    elif corpus is None:
        corpus = load_training_text(cfg)
    device = _resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _train(cfg, corpus, device, argv)


def _train(cfg: TrainConfig, corpus: Corpus, device: torch.device, argv) -> tuple[CharRNN, History]:
    clean = preprocess(corpus.text, cfg.preprocessing)
    train_text, val_text = split_text(clean, cfg.val_fraction)
    if len(val_text) < 2:
        raise ValueError("the validation split is too short; use a longer text")

    resume_meta = None
    if cfg.resume:
        best_model = load_model(cfg.resume)
        config = best_model.config
        resume_meta = best_model.provenance
        if resume_meta.get("corpus_sha256") != corpus.sha256:
            raise ValueError("--resume: the checkpoint was trained on a different text "
                             f"(sha256 {resume_meta.get('corpus_sha256')} != {corpus.sha256})")
    else:
        vocab = build_vocab(clean, cfg.min_count)
        config = ModelConfig(cell=cfg.cell, hidden_size=cfg.hidden, num_layers=cfg.layers,
                             tokens=tuple(vocab.tokens), preprocessing=cfg.preprocessing,
                             dropout=cfg.dropout)
    vocab = config.vocabulary
    train_ids = vocab.encode(train_text).ids
    val_ids = vocab.encode(val_text).ids

    model = build_model(config, seed=cfg.seed).to(device)
    model.train()
    optimizer = make_optimizer(model, cfg)

    # ---- counters (everything resume restores)
    c = {"step": 0, "epoch": 0, "batch": 0, "best_val": math.inf, "best_step": 0,
         "bad_evals": 0, "lr": cfg.lr, "loss_sum": 0.0, "loss_n": 0, "chars": 0,
         "train_seconds": 0.0, "step_seconds": 0.0, "history": [], "stopped": ""}
    carry = None
    best_sd = None
    best_prov: dict = {}
    if cfg.resume:
        sp = state_path(cfg.resume)
        if not sp.is_file():
            raise FileNotFoundError(f"--resume needs {sp} (written next to the checkpoint)")
        c, carry = _load_state(sp, model, optimizer, device)
        best_sd = {k: v.detach().clone().to(device) for k, v in best_model.state_dict().items()}
        best_prov["train_loss"] = resume_meta.get("train_loss")
    for g in optimizer.param_groups:
        g["lr"] = c["lr"]

    out = Path(cfg.out) if cfg.out else None
    history = History(rows=list(c["history"]))

    def provenance() -> dict:
        elapsed = c["train_seconds"] + (time.perf_counter() - t_run)
        return {
            "corpus": corpus.name, "corpus_sha256": corpus.sha256, "corpus_source": corpus.source,
            "corpus_details": corpus.details, "corpus_chars": len(corpus.text),
            "preprocessing": cfg.preprocessing,
            "val_split": f"last {cfg.val_fraction:g} of the preprocessed text: text[int(len(text)*"
                         f"{1 - cfg.val_fraction:g}):]",
            "val_procedure": f"rnnviz.train.evaluate_loss: {VAL_STREAMS} contiguous streams from "
                             "zero state, mean nats/char, no dropout",
            "val_fraction": cfg.val_fraction, "train_chars": len(train_text), "val_chars": len(val_text),
            "steps": c["best_step"], "total_steps": c["step"], "epochs": c["epoch"],
            "train_loss": best_prov.get("train_loss"), "val_loss": c["best_val"],
            "val_perplexity": math.exp(c["best_val"]), "val_bits_per_char": c["best_val"] / math.log(2),
            "seed": cfg.seed, "command": list(argv) if argv else None,
            "train_config": cfg.to_dict(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "train_seconds": round(elapsed, 2), "threads": torch.get_num_threads(),
            "device": str(device), "chars_per_second": round(c["chars"] / max(c["step_seconds"], 1e-9), 1),
            "torch": torch.__version__, "python": platform.python_version(),
            "stopped": c["stopped"],
        }

    def do_eval(scheduled: bool) -> None:
        model.eval()
        val = evaluate_loss(model, val_ids)
        model.train()
        tr = c["loss_sum"] / c["loss_n"] if c["loss_n"] else float("nan")
        if scheduled:
            c["loss_sum"], c["loss_n"] = 0.0, 0
        row = {"step": c["step"], "epoch": c["epoch"], "chars": c["chars"],
               "seconds": round(c["train_seconds"] + time.perf_counter() - t_run, 2),
               "lr": c["lr"], "train_loss": round(tr, 6), "val_loss": round(val, 6)}
        history.rows.append(row)
        c["history"] = history.rows
        nonlocal best_sd
        if val < c["best_val"]:
            c["best_val"], c["best_step"], c["bad_evals"] = val, c["step"], 0
            best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_prov["train_loss"] = tr
            if out is not None:
                save_checkpoint(model, out, provenance())
        elif scheduled:
            c["bad_evals"] += 1
            if cfg.lr_decay < 1.0:
                c["lr"] *= cfg.lr_decay
                for g in optimizer.param_groups:
                    g["lr"] = c["lr"]
        if out is not None:
            _write_curves(curves_path(out), history.rows)
        if bar is not None:
            bar.set_postfix(train=f"{tr:.3f}", val=f"{val:.3f}", best=f"{c['best_val']:.3f}",
                            cps=f"{c['chars'] / max(c['step_seconds'], 1e-9):,.0f}")

    bar = None  # the bar's ETA is for the step/epoch limit; --max-minutes shows time_left too
    if cfg.progress:
        from tqdm.auto import tqdm
        per_epoch = len(epoch_batches(train_ids, cfg.batch_size, cfg.num_steps, cfg.partition, cfg.seed, 0))
        total = cfg.max_steps or per_epoch * cfg.max_epochs
        bar = tqdm(total=total, initial=c["step"], unit="step", dynamic_ncols=True, file=sys.stderr)

    t_run = time.perf_counter()
    deadline = t_run + cfg.max_minutes * 60 - c["train_seconds"] if cfg.max_minutes > 0 else math.inf
    chars_per_batch = cfg.batch_size * cfg.num_steps
    stop = ""
    if c["stopped"] == "early stopping":
        stop = "early stopping"
    while not stop:
        if c["epoch"] >= cfg.max_epochs:
            stop = "max epochs"
            break
        batches = epoch_batches(train_ids, cfg.batch_size, cfg.num_steps, cfg.partition,
                                cfg.seed, c["epoch"])
        eval_every = cfg.eval_every or len(batches)
        if c["batch"] == 0 or cfg.partition == "random":
            carry = None
        while c["batch"] < len(batches):
            if cfg.max_steps and c["step"] >= cfg.max_steps:
                stop = "max steps"
                break
            if time.perf_counter() >= deadline:
                stop = "max minutes"
                break
            X, Y = batches[c["batch"]]
            X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True)
            torch.manual_seed(_step_seed(cfg.seed, c["step"]))
            t0 = time.perf_counter()
            loss, state = train_step(model, optimizer, X, Y, carry, cfg.clip)
            lv = float(loss)
            c["step_seconds"] += time.perf_counter() - t0
            carry = state if cfg.partition == "sequential" else None
            if not math.isfinite(lv):
                stop = "non-finite loss"
                break
            c["loss_sum"] += lv
            c["loss_n"] += 1
            c["step"] += 1
            c["batch"] += 1
            c["chars"] += chars_per_batch
            if bar is not None:
                bar.update(1)
                if c["step"] % 20 == 0:
                    left = (f" time_left={max(0.0, deadline - time.perf_counter()) / 60:.1f}min"
                            if deadline < math.inf else "")
                    bar.set_postfix_str(f"train={c['loss_sum'] / c['loss_n']:.3f} "
                                        f"best_val={c['best_val']:.3f} "
                                        f"cps={c['chars'] / max(c['step_seconds'], 1e-9):,.0f}{left}")
            due = (c["step"] % eval_every == 0) if cfg.eval_every else (c["batch"] == len(batches))
            if due:
                do_eval(scheduled=True)
                if cfg.patience and c["bad_evals"] >= cfg.patience:
                    stop = "early stopping"
            if stop:
                break
        if c["batch"] >= len(batches):
            c["epoch"] += 1
            c["batch"] = 0
            carry = None
    c["stopped"] = stop
    if c["loss_n"]:  # unscheduled final evaluation of the last weights
        do_eval(scheduled=False)
    elapsed = time.perf_counter() - t_run
    c["train_seconds"] += elapsed
    t_run = time.perf_counter()  # provenance() adds nothing more
    if bar is not None:
        bar.close()
    if out is not None:
        _save_state(state_path(out), model, optimizer, carry, c)
    if best_sd is not None:
        model.load_state_dict(best_sd)
    if out is not None and best_sd is not None:
        save_checkpoint(model, out, provenance())  # final provenance (times, stop reason)
    history.summary = {k: v for k, v in provenance().items() if k != "train_config"}
    model.eval()
    return model, history


# =============================================================================== model card table
def models_table(directory: str | os.PathLike | None = None) -> str:
    """The docs/MODELS.md table, read from the shipped checkpoints' metadata."""
    from .checkpoint import list_checkpoints
    lines = ["| name | cell | layers×H | corpus | preprocessing | val loss (nats/char) | val perplexity "
             "| bits/char | steps | training time | threads | chars/s | size |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for info in list_checkpoints(Path(directory) if directory else None):
        c, p = info.config, info.provenance
        mb = info.path.stat().st_size / 2**20
        lines.append(f"| {info.name} | {c.cell} | {c.num_layers}×{c.hidden_size} | {p.get('corpus')} "
                     f"| {c.preprocessing} | {p['val_loss']:.4f} | {p['val_perplexity']:.3f} "
                     f"| {p['val_bits_per_char']:.3f} | {p['steps']} | {p['train_seconds'] / 60:.1f} min "
                     f"| {p['threads']} | {p['chars_per_second']:,.0f} | {mb:.1f} MiB |")
    return "\n".join(lines)


def reproduce_command(info) -> str:
    """The recorded command with the wall-clock limit replaced by the step count the run reached
    (``--max-steps total_steps --max-minutes 0``) and ``--out`` pointing into checkpoints/: on the
    same machine type and thread count this reruns the same steps (wall-clock stops do not)."""
    cmd = list(info.provenance["command"])
    out, i = [], 0
    while i < len(cmd):
        if cmd[i] in ("--max-minutes", "--max-steps", "--out"):
            i += 2
            continue
        out.append(cmd[i])
        i += 1
    out += ["--max-steps", str(info.provenance["total_steps"]), "--max-minutes", "0",
            "--out", f"checkpoints/{info.name}.safetensors"]
    return shlex.join(out)


# =============================================================================== CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnnviz.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kw = {"help": f.metadata.get("help", ""), "default": f.default}
        if f.type in (bool, "bool"):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = type(f.default)
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
        p.add_argument(flag, **kw)
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    return TrainConfig(**vars(ns))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(argv)
    command = ["python", "-m", "rnnviz.train", *argv]
    corpus = load_training_text(cfg)
    model, history = train(cfg, corpus=corpus, argv=command)
    from .units.stats import write_after_training   # the Units view's numbers, beside the checkpoint
    write_after_training(cfg.out, corpus.text)
    s = history.summary
    print(f"best val loss {s['val_loss']:.4f} nats/char (perplexity {s['val_perplexity']:.3f}, "
          f"{s['val_bits_per_char']:.3f} bits/char) at step {s['steps']} of {s['total_steps']}; "
          f"{s['train_seconds']:.0f} s, {s['chars_per_second']:,.0f} chars/s, stopped: {s['stopped']}; "
          f"wrote {cfg.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
