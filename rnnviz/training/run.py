"""One training run of the Train view: a :class:`Trainer` driven step by step off the script thread,
publishing a :class:`Snapshot` the page polls.

The run is built and stepped in a worker thread of :class:`rnnviz.training.pool.TrainingPool`;
every field the page reads is copied out under a lock (:meth:`TrainingRun.snapshot`). Per step it
records the loss and the global gradient norm before clipping (summed from per-parameter
post-accumulate hooks) and after (the norm of the gradients the optimiser used); every
``sample_every`` steps a sample from the user's prefix (:mod:`.samples`) and the top layer's hidden
states over a fixed probe text, both computed here so the page does no model math. Once paused or
done it publishes both the latest and the best-validation weights, and a sample from each.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..checkpoint import checkpoint_bytes, load_model_bytes
from ..names import act_name
from ..trace import trace
from .config import TrainConfig
from .data import split_text
from .samples import BEST, DEFAULT_PREFIX, LATEST, MAX_PREFIX, Sample, take_sample, weights_provenance
from .trainer import Trainer

QUEUED, RUNNING, PAUSED, DONE = "queued", "running", "paused", "done"
FAILED, CANCELLED = "failed", "cancelled"

log = logging.getLogger(__name__)


def failure_message(err: BaseException) -> str:
    """What the page says when a run fails: what happened, and what the user can change (the
    traceback goes to the server log)."""
    if isinstance(err, MemoryError):
        return ("training failed: the server ran out of memory for this run; lower the hidden size, "
                "the batch size or the sequence length, or train on a shorter text")
    return (f"training failed ({type(err).__name__}: {err}); try again with smaller settings or "
            "another text, and if it keeps failing, tell the server's operator (the error is in the "
            "server log)")
#: Per-step curves keep at most this many points (every other one is dropped beyond it).
MAX_CURVE_POINTS = 4000
PROBE_CHARS = 80
#: Characters of the training text offered to open the model on (the page's link holds 2,000).
OPEN_CHARS = 2000


@dataclass
class Snapshot:
    """What the page shows of a run. Curves: ``steps[i]`` with ``losses[i]``, ``grad_before[i]``,
    ``grad_after[i]``; ``history``: the evaluation rows (step, train_loss, val_loss, …);
    ``samples``: :class:`Sample` (step, which weights, prefix, text); ``prefix``: the one the next
    samples start from; ``probe_h``: (len(probe_chars), H) top-layer hidden states at ``probe_step``;
    once paused or done, ``checkpoint`` / ``latest_checkpoint``: .safetensors bytes of the
    best-validation weights (of step ``best_step``) and of the latest ones (of ``step``);
    ``trained_text``: the start of the text's training part (at most OPEN_CHARS characters)."""

    run_id: int
    key: str
    status: str = QUEUED
    message: str = ""
    queue_position: int = 0
    holders: int = 0
    step: int = 0
    max_steps: int = 0
    seconds: float = 0.0
    seconds_left: float | None = None
    chars_per_second: float = 0.0
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_before: list[float] = field(default_factory=list)
    grad_after: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    prefix: str = DEFAULT_PREFIX
    probe_chars: list[str] = field(default_factory=list)
    probe_h: np.ndarray | None = None
    probe_step: int = -1
    checkpoint: bytes | None = None
    latest_checkpoint: bytes | None = None
    best_step: int = 0
    trained_text: str = ""
    provenance: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)       #: the run's TrainConfig as a dict

    def copy(self) -> Snapshot:
        out = copy.copy(self)
        for name in ("steps", "losses", "grad_before", "grad_after", "history", "samples"):
            setattr(out, name, list(getattr(self, name)))
        return out


class TrainingRun:
    """One run: its text, config, trainer (built on first work), controls and snapshot."""

    def __init__(self, run_id: int, key: str, text: str, cfg: TrainConfig, *, sample_every: int,
                 trainer_factory: Callable[..., Trainer] = Trainer, extra_provenance: dict | None = None,
                 prefix: str = DEFAULT_PREFIX):
        self.run_id, self.key = run_id, key
        self.text, self.cfg, self.sample_every = text, cfg, max(1, sample_every)
        self.factory, self.extra = trainer_factory, dict(extra_provenance or {})
        self.trainer: Trainer | None = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_as = PAUSED
        self._grad_sq = [0.0]
        #: messages replacing the default ones per stopping reason ("max minutes", …)
        self.messages: dict[str, str] = {}
        self.snap = Snapshot(run_id, key, max_steps=cfg.max_steps, config=cfg.to_dict(),
                             prefix=(prefix or DEFAULT_PREFIX)[:MAX_PREFIX], trained_text=self.trained_text)

    # ------------------------------------------------------------------ controls (any thread)
    def request_stop(self, status: str) -> None:
        """Ask the worker to stop at the next step boundary, ending in ``status`` (PAUSED or CANCELLED)."""
        self._stop_as = status
        self._stop.set()

    def rearm(self) -> None:
        """Forget a served stop request (before queueing a paused run again)."""
        self._stop.clear()

    def set_prefix(self, prefix: str) -> None:
        """The next samples start from ``prefix`` (empty: DEFAULT_PREFIX)."""
        with self.lock:
            self.snap.prefix = (prefix or DEFAULT_PREFIX)[:MAX_PREFIX]

    def resample(self) -> bool:
        """A paused or finished run: a sample from each published set of weights, from the current
        prefix (False when there are none, or the run is training: its next samples use the prefix)."""
        with self.lock:
            sn = self.snap
            if sn.status not in (PAUSED, DONE) or sn.checkpoint is None or sn.latest_checkpoint is None:
                return False
            jobs = [(sn.latest_checkpoint, sn.step, LATEST), (sn.checkpoint, sn.best_step, BEST)]
            prefix = sn.prefix
        got = [take_sample(load_model_bytes(data), step, which, prefix) for data, step, which in jobs]
        with self.lock:
            self.snap.samples.extend(got)
        return True

    def snapshot(self) -> Snapshot:
        with self.lock:
            return self.snap.copy()

    def set_status(self, status: str, message: str = "") -> None:
        with self.lock:
            self.snap.status, self.snap.message = status, message

    @property
    def status(self) -> str:
        return self.snap.status

    # ------------------------------------------------------------------ worker thread
    def work(self, construct_lock: threading.Lock, tick: Callable[[], None]) -> None:
        """Build the trainer if needed and step until a limit, a stop request or an error; the run
        ends PAUSED / DONE / FAILED / CANCELLED. ``tick`` is called once per step (heartbeats)."""
        try:
            if self.trainer is None:
                self.set_status(RUNNING, "preparing: encoding the text and building the model")
                with construct_lock:        # one model built at a time (memory)
                    self.trainer = self.factory(self.cfg, self.text)
                self._install_hooks()
                self._publish_probe()
            self.set_status(RUNNING)
            reason = self._loop(tick)
            if self._stop.is_set() and self._stop_as == CANCELLED:
                self.set_status(CANCELLED, "stopped: no session follows this run any more")
                self.trainer = None
                return
            self._finalize(DONE if reason else PAUSED, reason)
        except Exception as err:   # noqa: BLE001 — a failed run reports, it never kills the pool
            log.exception("training run %d failed (%s, %d×%d, batch %d × %d steps, %d characters)",
                          self.run_id, self.cfg.cell, self.cfg.layers, self.cfg.hidden, self.cfg.batch_size,
                          self.cfg.num_steps, len(self.text))
            self.trainer = None
            self.set_status(FAILED, failure_message(err))

    def _loop(self, tick: Callable[[], None]) -> str:
        """Step until a limit fires (returns its name) or a stop is requested (returns "")."""
        tr = self.trainer
        while not self._stop.is_set():
            limit = tr.limit_reached()
            if limit:
                return limit
            self._grad_sq[0] = 0.0
            loss = tr.step()
            if not math.isfinite(loss):
                return "non-finite loss"
            self._record(loss)
            if tr.state.step % self.sample_every == 0:
                self._publish_probe()
            tick()
        return ""

    def _install_hooks(self) -> None:
        acc = self._grad_sq

        def hook(p: torch.Tensor) -> None:
            acc[0] += float(p.grad.detach().pow(2).sum())

        for p in self.trainer.model.parameters():
            p.register_post_accumulate_grad_hook(hook)

    def _record(self, loss: float) -> None:
        tr = self.trainer
        after = math.sqrt(sum(float(p.grad.detach().pow(2).sum())
                              for p in tr.model.parameters() if p.grad is not None))
        s = tr.state
        with self.lock:
            sn = self.snap
            sn.steps.append(s.step)
            sn.losses.append(loss)
            sn.grad_before.append(math.sqrt(self._grad_sq[0]))
            sn.grad_after.append(after)
            if len(sn.steps) > MAX_CURVE_POINTS:
                for name in ("steps", "losses", "grad_before", "grad_after"):
                    setattr(sn, name, getattr(sn, name)[::2])
            sn.step, sn.history = s.step, list(s.history)
            sn.seconds, sn.chars_per_second = tr.elapsed(), s.chars_per_second
            sn.seconds_left = self._seconds_left()

    def _seconds_left(self) -> float | None:
        tr, cfg = self.trainer, self.cfg
        s = tr.state
        left = []
        if cfg.max_minutes > 0:
            left.append(max(0.0, cfg.max_minutes * 60 - tr.elapsed()))
        if cfg.max_steps and s.step:
            left.append((cfg.max_steps - s.step) * tr.elapsed() / s.step)
        return min(left) if left else None

    def _publish_probe(self) -> None:
        """A sample of the latest weights from the prefix and the top layer's h over the probe text
        (eval mode)."""
        tr = self.trainer
        model = tr.model
        model.eval()
        try:
            sample = take_sample(model, tr.state.step, LATEST, self.snap.prefix)
            probe = trace(model, self.probe_text, gates=False)
        finally:
            model.train()
        h = probe[act_name(model.config.num_layers - 1, "h")].detach().cpu().numpy().copy()
        with self.lock:
            self.snap.samples.append(sample)
            self.snap.probe_chars, self.snap.probe_h = list(probe.chars), h
            self.snap.probe_step = tr.state.step

    @property
    def trained_text(self) -> str:
        """The start of the training part of the text (at most OPEN_CHARS characters): what the
        model is opened on after training, a text it was trained on."""
        return split_text(self.text, self.cfg.val_fraction)[0][:OPEN_CHARS]

    @property
    def probe_text(self) -> str:
        """The fixed probe: the first PROBE_CHARS characters of the validation split."""
        split = int(len(self.text) * (1.0 - self.cfg.val_fraction))
        return self.text[split:split + PROBE_CHARS] or self.text[:PROBE_CHARS]

    def _finalize(self, status: str, reason: str) -> None:
        """Evaluate steps since the last evaluation, then publish the best-validation and the latest
        weights as bytes, with a sample from each (the latest one only if not already taken)."""
        tr = self.trainer
        s = tr.state
        if s.loss_n:
            tr.evaluate(scheduled=False)
        last = self.snap.samples[-1] if self.snap.samples else None
        if last is None or (last.step, last.weights, last.prefix) != (s.step, LATEST, self.snap.prefix):
            self._publish_probe()
        best, history = tr.best_model(), list(s.history)
        prov = {**tr.provenance(), **self.extra, "stopped": reason or "stopped by the user"}
        data = checkpoint_bytes(best, weights_provenance(prov, history, s.step, BEST))
        latest = checkpoint_bytes(tr.model, weights_provenance(prov, history, s.step, LATEST))
        best_sample = take_sample(best, s.best_step, BEST, self.snap.prefix)
        with self.lock:
            sn = self.snap
            sn.history, sn.checkpoint, sn.provenance = history, data, prov
            sn.latest_checkpoint, sn.best_step = latest, s.best_step
            sn.samples.append(best_sample)
            sn.seconds, sn.seconds_left = tr.elapsed(), 0.0 if status == DONE else sn.seconds_left
            sn.status = status
            sn.message = self.messages.get(reason) or {"max steps": "finished: all steps done",
                          "max minutes": "finished: the time budget is used up",
                          "non-finite loss": "stopped: the loss became non-finite (lower the learning rate)"
                          }.get(reason, reason or "stopped")
        if status == DONE:
            self.trainer = None           # frees the optimiser and data; the bytes remain
