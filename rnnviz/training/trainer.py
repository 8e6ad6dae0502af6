"""Trainer: the training loop as an object that can be driven step by step.

    tr = Trainer(TrainConfig(cell="gru", hidden=128, max_steps=2000, out=""), text)
    tr.run(steps=100)                 # 100 optimiser steps (fewer if a stopping rule fires)
    tr.state.step, tr.state.val_losses, tr.state.stopped
    tr.run()                          # on until max steps / epochs / minutes or early stopping
    model, history = tr.finish()      # last evaluation, best weights, files written

The procedure (data, validation loss, optimisation, reproducibility) is documented in
:mod:`rnnviz.training`, whose ``train()`` is ``Trainer(...)`` + ``run()`` + ``finish()``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import load_model, save_checkpoint
from ..corpora import Corpus
from ..model import CharRNN, ModelConfig, build_model
from .config import TrainConfig
from .data import (build_vocab, epoch_batches, load_training_text, split_text, step_seed,
                         text_corpus)
from .evaluate import VAL_STREAMS, evaluate_loss
from .timeline import TimelineRecorder
from .state import (Carry, History, TrainState, curves_path, load_trainstate,
                          save_trainstate, state_path, write_curves)
from ..vocab import preprocess


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    return torch.device(name)


class _Bar:
    """The CLI's tqdm bar (``--progress``): ETA for the step/epoch limit, live losses and chars/s."""

    def __init__(self, total: int, initial: int):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def stepped(self, s: TrainState, minutes_left: float | None) -> None:
        self.bar.update(1)
        if s.step % 20 == 0:
            left = f" time_left={minutes_left:.1f}min" if minutes_left is not None else ""
            self.bar.set_postfix_str(f"train={s.mean_train_loss:.3f} best_val={s.best_val:.3f} "
                                     f"cps={s.chars_per_second:,.0f}{left}")

    def evaluated(self, s: TrainState, train: float, val: float) -> None:
        self.bar.set_postfix(train=f"{train:.3f}", val=f"{val:.3f}", best=f"{s.best_val:.3f}",
                             cps=f"{s.chars_per_second:,.0f}")

    def close(self) -> None:
        self.bar.close()


class Trainer:
    """One training run of a CharRNN on one text.

    ``model`` holds the latest weights (train mode) until :meth:`finish` loads the best ones;
    ``state`` (:class:`TrainState`) every counter and the evaluation history; ``best_weights`` the
    state dict with the lowest validation loss so far (None before the first evaluation).
    ``text`` (the raw training text) overrides cfg.text / cfg.corpus; so does ``corpus``.
    ``timeline`` (cfg.timeline > 0) records log-spaced weight snapshots; :meth:`finish` writes them
    beside the checkpoint (``<out>.timeline``, :mod:`rnnviz.training.timeline`).
    Every method leaves the caller's global RNG untouched; wall clock counts only inside
    :meth:`run`, :meth:`step` and :meth:`finish`.
    """

    def __init__(self, cfg: TrainConfig, text: str | None = None, *, corpus: Corpus | None = None,
                 argv: list[str] | None = None):
        self.cfg, self.argv = cfg, argv
        if text is not None:
            corpus = text_corpus(cfg, text)
        self.corpus = corpus if corpus is not None else load_training_text(cfg)
        self.device = resolve_device(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out) if cfg.out else None
        self._t_run: float | None = None      # start of the wall-clock span now counting
        self._bar: _Bar | None = None
        self._batches: tuple[int, list] = (-1, [])   # (epoch, its minibatches)
        self._setup()
        self.history = History(rows=self.state.history)
        self.timeline: TimelineRecorder | None = None    # weight snapshots (cfg.timeline > 0)
        if cfg.timeline and self.out is not None:        # written beside the checkpoint only
            planned = cfg.max_steps or len(self._epoch_batches(0)) * cfg.max_epochs
            self.timeline = TimelineRecorder(planned, cfg.timeline)
            if cfg.resume:
                self.timeline.resume_from(cfg.resume, self.state.step)
            self.timeline.observe(self.state.step, self.model)

    def _setup(self) -> None:
        cfg = self.cfg
        clean = preprocess(self.corpus.text, cfg.preprocessing)
        train_text, val_text = split_text(clean, cfg.val_fraction)
        if len(val_text) < 2:
            raise ValueError("the validation split is too short; use a longer text")
        best = self._resumed_checkpoint() if cfg.resume else None
        config = best.config if best is not None else ModelConfig(
            cell=cfg.cell, hidden_size=cfg.hidden, num_layers=cfg.layers,
            tokens=tuple(build_vocab(clean, cfg.min_count).tokens),
            preprocessing=cfg.preprocessing, dropout=cfg.dropout)
        vocab = config.vocabulary
        self.train_ids, self.val_ids = vocab.encode(train_text).ids, vocab.encode(val_text).ids
        self.train_chars, self.val_chars = len(train_text), len(val_text)
        self.model = build_model(config, seed=cfg.seed).to(self.device)
        self.model.train()
        self.optimizer = make_optimizer(self.model, cfg)
        self.state = TrainState(lr=cfg.lr)
        self.carry: Carry = None                # BPTT state carried into the next step
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_train_loss: float | None = None
        if best is not None:
            self._resume(best)
        self._set_lr(self.state.lr)

    def _resumed_checkpoint(self) -> CharRNN:
        best = load_model(self.cfg.resume)
        sha = best.provenance.get("corpus_sha256")
        if sha != self.corpus.sha256:
            raise ValueError("--resume: the checkpoint was trained on a different text "
                             f"(sha256 {sha} != {self.corpus.sha256})")
        return best

    def _resume(self, best: CharRNN) -> None:
        """Latest weights, optimiser, carry and counters from the .trainstate; best from ``best``."""
        sp = state_path(self.cfg.resume)
        if not sp.is_file():
            raise FileNotFoundError(f"--resume needs {sp} (written next to the checkpoint)")
        self.state, self.carry = load_trainstate(sp, self.model, self.optimizer, self.device)
        self.best_weights = {k: v.detach().clone().to(self.device) for k, v in best.state_dict().items()}
        self.best_train_loss = best.provenance.get("train_loss")

    # ------------------------------------------------------------------ clock, limits
    @contextmanager
    def _running(self):
        """Count wall clock into ``state.train_seconds`` (no-op when nested)."""
        if self._t_run is not None:
            yield
            return
        self._t_run = time.perf_counter()
        try:
            yield
        finally:
            self.state.train_seconds += time.perf_counter() - self._t_run
            self._t_run = None

    def elapsed(self) -> float:
        """Seconds of training wall clock so far (this run and, after --resume, the earlier ones)."""
        running = time.perf_counter() - self._t_run if self._t_run is not None else 0.0
        return self.state.train_seconds + running

    def limit_reached(self) -> str:
        """Which of max epochs / max steps / max minutes forbids another step ("" if none)."""
        s, cfg = self.state, self.cfg
        if s.epoch >= cfg.max_epochs:
            return "max epochs"
        if cfg.max_steps and s.step >= cfg.max_steps:
            return "max steps"
        if cfg.max_minutes > 0 and self.elapsed() >= cfg.max_minutes * 60:
            return "max minutes"
        return ""

    def _set_lr(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    # ------------------------------------------------------------------ training
    def run(self, steps: int | None = None) -> TrainState:
        """Take optimiser steps until a stopping rule fires (``state.stopped`` then says which) or,
        when given, ``steps`` more steps are done. Call again to continue; returns ``state``."""
        s = self.state
        if s.stopped != "early stopping":      # early stopping is final, the limits are re-checked
            s.stopped = ""
        end = math.inf if steps is None else s.step + steps
        if self.cfg.progress and self._bar is None:
            per_epoch = len(self._epoch_batches(0))
            self._bar = _Bar(self.cfg.max_steps or per_epoch * self.cfg.max_epochs, s.step)
        with self._running():
            while not s.stopped and s.step < end:
                s.stopped = self.limit_reached()
                if not s.stopped:
                    self._step()
        return s

    def step(self) -> float:
        """One optimiser step on the next minibatch, plus the evaluation if one is due; returns its
        loss (not finite: ``state.stopped`` is "non-finite loss"). Does not check the limits."""
        with self._running():
            return self._step()

    def _epoch_batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._batches[0] != epoch:
            cfg = self.cfg
            self._batches = (epoch, epoch_batches(self.train_ids, cfg.batch_size, cfg.num_steps,
                                                  cfg.partition, cfg.seed, epoch))
        return self._batches[1]

    def _step(self) -> float:
        s, cfg = self.state, self.cfg
        batches = self._epoch_batches(s.epoch)
        if s.batch == 0 or cfg.partition == "random":
            self.carry = None                 # zero state at each epoch start / random minibatch
        X, Y = batches[s.batch]
        X, Y = X.to(self.device, non_blocking=True), Y.to(self.device, non_blocking=True)
        self.model.seed_dropout(step_seed(cfg.seed, s.step), self.device)
        t0 = time.perf_counter()
        loss, carry = train_step(self.model, self.optimizer, X, Y, self.carry, cfg.clip)
        lv = float(loss)
        s.step_seconds += time.perf_counter() - t0
        self.carry = carry if cfg.partition == "sequential" else None
        if not math.isfinite(lv):
            s.stopped = "non-finite loss"
            return lv
        s.loss_sum += lv
        s.loss_n += 1
        s.step += 1
        s.batch += 1
        if self.timeline is not None:
            self.timeline.observe(s.step, self.model)
        s.chars += cfg.batch_size * cfg.num_steps
        if self._bar is not None:
            left = cfg.max_minutes - self.elapsed() / 60 if cfg.max_minutes > 0 else None
            self._bar.stepped(s, None if left is None else max(0.0, left))
        due = (s.step % cfg.eval_every == 0) if cfg.eval_every else (s.batch == len(batches))
        if due:
            self.evaluate(scheduled=True)
            if cfg.patience and s.bad_evals >= cfg.patience:
                s.stopped = "early stopping"
        if s.batch >= len(batches):
            s.epoch, s.batch, self.carry = s.epoch + 1, 0, None
        return lv

    # ------------------------------------------------------------------ evaluation, outputs
    def evaluate(self, scheduled: bool = False) -> dict:
        """Validation loss of the current weights, appended to the history; returns the row.

        A better loss keeps the weights as the best and writes the checkpoint. ``scheduled`` (the
        loop's evaluations) also closes the train-loss window and counts towards lr decay and
        early stopping."""
        s = self.state
        self.model.eval()
        val = evaluate_loss(self.model, self.val_ids)
        self.model.train()
        tr = s.mean_train_loss
        if scheduled:
            s.loss_sum, s.loss_n = 0.0, 0
        row = {"step": s.step, "epoch": s.epoch, "chars": s.chars, "seconds": round(self.elapsed(), 2),
               "lr": s.lr, "train_loss": round(tr, 6), "val_loss": round(val, 6)}
        s.history.append(row)
        if val < s.best_val:
            s.best_val, s.best_step, s.bad_evals = val, s.step, 0
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best_train_loss = tr
            self.checkpoint()
        elif scheduled:
            s.bad_evals += 1
            if self.cfg.lr_decay < 1.0:
                s.lr *= self.cfg.lr_decay
                self._set_lr(s.lr)
        if self.out is not None:
            write_curves(curves_path(self.out), s.history)
        if self._bar is not None:
            self._bar.evaluated(s, tr, val)
        return row

    def best_model(self) -> CharRNN:
        """A copy of the model with the best weights so far (eval mode); the latest before any."""
        model = copy.deepcopy(self.model)
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)
        return model.eval()

    def checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the best weights + config + provenance to ``path`` (default ``cfg.out``); None if
        there is no path or no evaluation yet."""
        path = path if path is not None else self.out
        if path is None or self.best_weights is None:
            return None
        return save_checkpoint(self.best_model(), path, self.provenance())

    def provenance(self) -> dict:
        """The checkpoint's provenance: corpus, split, best/total steps and losses, run, machine."""
        cfg, s, corpus = self.cfg, self.state, self.corpus
        return {
            "corpus": corpus.name, "corpus_sha256": corpus.sha256, "corpus_source": corpus.source,
            "corpus_details": corpus.details, "corpus_chars": len(corpus.text),
            "preprocessing": cfg.preprocessing,
            "val_split": f"last {cfg.val_fraction:g} of the preprocessed text: text[int(len(text)*"
                         f"{1 - cfg.val_fraction:g}):]",
            "val_procedure": f"rnnviz.training.evaluate_loss: {VAL_STREAMS} contiguous streams from "
                             "zero state, mean nats/char, no dropout",
            "val_fraction": cfg.val_fraction, "train_chars": self.train_chars,
            "val_chars": self.val_chars,
            "steps": s.best_step, "total_steps": s.step, "epochs": s.epoch,
            "train_loss": self.best_train_loss, "val_loss": s.best_val,
            "val_perplexity": math.exp(s.best_val), "val_bits_per_char": s.best_val / math.log(2),
            "seed": cfg.seed, "command": list(self.argv) if self.argv else None,
            "train_config": cfg.to_dict(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "train_seconds": round(self.elapsed(), 2), "threads": torch.get_num_threads(),
            "device": str(self.device), "chars_per_second": round(s.chars_per_second, 1),
            "torch": torch.__version__, "python": platform.python_version(),
            "stopped": s.stopped,
        }

    def _write_timeline(self) -> None:
        """``<out>.timeline`` (rnnviz.timeline) ending at the checkpoint just written."""
        if self.timeline is None or self.out is None:
            return
        final = self.best_model().cpu()
        final.provenance = self.provenance()
        self.timeline.write(final, self.out, self.val_ids)

    def finish(self) -> tuple[CharRNN, History]:
        """End the run: evaluate the last weights if steps followed the last evaluation, write the
        .trainstate (latest weights, for --resume), load the best weights into ``model`` (eval
        mode) and write the checkpoint with the final provenance. Returns (model, history).
        Call it once, at the end (to train on later, resume from the checkpoint: ``cfg.resume``)."""
        with self._running():
            if self.state.loss_n:
                self.evaluate(scheduled=False)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.out is not None:
            save_trainstate(state_path(self.out), self.model, self.optimizer, self.carry, self.state)
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            self.checkpoint()
            self._write_timeline()
        self.history.summary = {k: v for k, v in self.provenance().items() if k != "train_config"}
        self.model.eval()
        return self.model, self.history
