"""A bounded pool of training runs, shared between the sessions of one server.

    pool = TrainingPool(workers=2)
    run_id = pool.submit("session-a", text, run_config(cell="lstm", hidden=64, max_steps=200))
    snap = pool.snapshot(run_id, "session-a")     # poll (also the session's heartbeat)
    pool.stop(run_id, "session-a"); pool.resume(run_id, "session-a"); pool.release(run_id, "session-a")

* At most ``workers`` runs train at once (default 1; the app passes RNNVIZ_TRAIN_WORKERS), each in its own
  thread; the others wait in a queue that is fair per session: each session's first waiting run
  comes before any session's second (first come, first served within a round;
  ``Snapshot.queue_position``, 1 = next). While others wait, a run trains for at most
  ``slice_s`` seconds at a time, then goes back to the queue and continues later where it stopped:
  one long run cannot hold the trainer for a class. A thread exits when the queue is empty, so an
  idle pool holds no thread.
* A run is identified by sha256(text) + its whole TrainConfig (seed included): it is deterministic
  given those, so an identical request joins the existing run (one computation for a classroom).
* A run lives while some session holds it. A session holds a run from submit until release; its
  polls are heartbeats, and a session silent for ``heartbeat_s`` is released. A run nobody holds is
  cancelled (queued: dequeued; running: stopped at the next step) and forgotten.
* Stop pauses a run only for its sole holder (the run then leaves the shared index: it is private);
  a session stopping a shared run just lets go of it. Capacity: at most ``max_runs`` runs are
  queued or training (only those count); paused and finished runs beyond ``max_runs`` in all are
  forgotten oldest first (their models were already handed to their sessions). Each text, model,
  step memory and wall time is capped by :class:`TrainLimits`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from typing import Callable

from ..corpora import sha256_text
from ..vocab import preprocess
from .config import TrainConfig
from .data import split_text
from .fit_text import fit_to_text, needed_chars
from .limits import TrainLimits, TrainRefused, check_model_size, check_text, fit_memory
from .samples import DEFAULT_PREFIX
from .trainer import Trainer
from .run import CANCELLED, DONE, FAILED, PAUSED, QUEUED, RUNNING, Snapshot, TrainingRun

#: Evaluate, sample and probe every this many steps.
SAMPLE_EVERY = 25


def run_config(*, cell: str = "lstm", hidden: int = 128, layers: int = 1, num_steps: int = 64,
               batch_size: int = 32, lr: float = 0.01, clip: float = 1.0, max_steps: int = 400,
               max_seconds: float = 0.0, seed: int = 0, preprocessing: str = "none",
               corpus: str = "text", eval_every: int = SAMPLE_EVERY) -> TrainConfig:
    """The TrainConfig of a page run: the knobs, plus fixed CPU / no files / no early stopping."""
    return TrainConfig(corpus=corpus, out="", preprocessing=preprocessing, cell=cell, hidden=hidden,
                       layers=layers, num_steps=num_steps, batch_size=batch_size, lr=lr, clip=clip,
                       max_steps=max_steps, max_minutes=max_seconds / 60, max_epochs=1_000_000,
                       eval_every=eval_every, patience=0, seed=seed, device="cpu", threads=1,
                       progress=False)


def run_key(text: str, cfg: TrainConfig) -> str:
    """The run's identity: sha256 of the text's sha256 and the config (seed included) as JSON."""
    blob = sha256_text(text) + "\0" + json.dumps(cfg.to_dict(), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class TrainingPool:
    """Bounded, shared, reference-counted training runs (see the module docstring)."""

    def __init__(self, workers: int = 1, limits: TrainLimits | None = None, *,
                 max_runs: int = 32, heartbeat_s: float = 120.0, slice_s: float = 60.0,
                 trainer_factory: Callable[..., Trainer] = Trainer, sample_every: int = SAMPLE_EVERY):
        self.workers = max(1, int(workers))
        self.limits = limits or TrainLimits()
        self.max_runs, self.heartbeat_s, self.slice_s = max_runs, heartbeat_s, slice_s
        self.factory, self.sample_every = trainer_factory, sample_every
        self._lock = threading.Lock()
        self._construct = threading.Lock()
        self._runs: dict[int, TrainingRun] = {}
        self._holders: dict[int, dict[str, float]] = {}   # run id → {session: last heartbeat}
        self._shared: dict[str, int] = {}                 # run key → run id (joinable runs)
        self._queue: deque[int] = deque()
        self._owner: dict[int, str] = {}                  # run id → the session that submitted it
        self._yielding: set[int] = set()                  # runs whose turn ended (slice_s)
        self._threads: set[threading.Thread] = set()
        self._next_id = 1
        self._last_expire = 0.0

    # ------------------------------------------------------------------ requests
    def validate(self, text: str, cfg: TrainConfig) -> None:
        """Raise TrainRefused when the text or the model breaks a cap or cannot be trained."""
        clean = check_text(text, cfg.preprocessing, self.limits)
        check_model_size(cfg.cell, cfg.hidden, cfg.layers, len(set(clean)) + 1, self.limits)
        train, _ = split_text(clean, cfg.val_fraction)
        need = cfg.batch_size * cfg.num_steps + cfg.num_steps + 1
        if len(train) < need:
            raise TrainRefused(f"The training part of the text ({len(train):,} characters) is too short "
                               f"for batch size {cfg.batch_size} × sequence length {cfg.num_steps}; "
                               f"give at least {need:,} characters or lower them.")

    def fit_text(self, text: str, cfg: TrainConfig) -> tuple[TrainConfig, str | None]:
        """``cfg`` with batch size and sequence length halved until the text's training part holds a
        minibatch (:func:`rnnviz.training.fit_text.fit_to_text`), and the note saying so (None:
        unchanged). A text that nothing fits is left to :meth:`validate` to refuse."""
        try:
            clean = check_text(text, cfg.preprocessing, self.limits)
        except TrainRefused:
            return cfg, None
        train, _ = split_text(clean, cfg.val_fraction)
        b, t, note = fit_to_text(len(train), cfg.batch_size, cfg.num_steps)
        if note is None or needed_chars(b, t) > len(train):
            return cfg, None
        return TrainConfig(**{**cfg.to_dict(), "batch_size": b, "num_steps": t}), note

    def fit(self, text: str, cfg: TrainConfig) -> tuple[TrainConfig, str | None]:
        """``cfg`` with batch size and sequence length shrunk until one step's activations fit the
        server's memory per run (limits.fit_memory), and the note saying what shrank (None: nothing).
        Prices before anything is allocated; raises TrainRefused when nothing fits."""
        vocab = len(set(preprocess(text, cfg.preprocessing))) + 1
        b, t, note = fit_memory(cfg.cell, cfg.hidden, cfg.layers, vocab, cfg.batch_size, cfg.num_steps)
        if note is None:
            return cfg, None
        return TrainConfig(**{**cfg.to_dict(), "batch_size": b, "num_steps": t}), note

    def capped(self, cfg: TrainConfig) -> tuple[TrainConfig, dict[str, str]]:
        """``cfg`` with the wall-time cap applied, and the message shown when the cap ends the run."""
        cap_min = self.limits.max_seconds / 60
        if cfg.max_minutes > 0 and cfg.max_minutes <= cap_min:
            return cfg, {}
        capped = TrainConfig(**{**cfg.to_dict(), "max_minutes": cap_min})
        return capped, {"max minutes": f"stopped at this server's wall-time cap of "
                                       f"{self.limits.max_seconds:g} s per run"}

    def submit(self, session: str, text: str, cfg: TrainConfig, extra_provenance: dict | None = None,
               prefix: str = DEFAULT_PREFIX) -> int:
        """Hold the run of (text, cfg): join the identical one if it exists, else queue a new one
        whose samples start from ``prefix``. Raises TrainRefused (caps, bad text, server full). A
        short text trains with a smaller batch and sequence length (:meth:`fit_text`)."""
        cfg, _ = self.fit_text(text, cfg)
        self.validate(text, cfg)
        cfg, _note = self.fit(text, cfg)
        cfg, messages = self.capped(cfg)
        key = run_key(text, cfg)
        with self._lock:
            self._expire_locked(force=True)
            rid = self._shared.get(key)
            if rid is not None:
                self._holders[rid][session] = time.monotonic()
                return rid
            self._make_room_locked()
            rid, self._next_id = self._next_id, self._next_id + 1
            run = TrainingRun(rid, key, text, cfg, sample_every=self.sample_every,
                              trainer_factory=self.factory, extra_provenance=extra_provenance,
                              prefix=prefix)
            run.messages.update(messages)
            self._runs[rid], self._holders[rid], self._shared[key] = run, {session: time.monotonic()}, rid
            self._owner[rid] = session
            self._queue.append(rid)
            self._schedule_locked()
            return rid

    def snapshot(self, run_id: int, session: str) -> Snapshot | None:
        """The run's snapshot (None when it no longer exists); counts as the session's heartbeat."""
        with self._lock:
            self._expire_locked()
            run = self._runs.get(run_id)
            if run is None:
                return None
            self._holders[run_id][session] = time.monotonic()
            snap = run.snapshot()
            snap.holders = len(self._holders[run_id])
            if snap.status == QUEUED and run_id in self._queue:
                snap.queue_position = self._fair_order_locked().index(run_id) + 1
            return snap

    def stop(self, run_id: int, session: str) -> str:
        """Pause the run if ``session`` holds it alone; else let go of it. Returns what happened."""
        with self._lock:
            run, holders = self._runs.get(run_id), self._holders.get(run_id, {})
            if run is None or session not in holders:
                return "gone"
            if len(holders) > 1:
                self._release_locked(run_id, session)
                return "left"
            if self._shared.get(run.key) == run_id:
                del self._shared[run.key]
            self._yielding.discard(run_id)           # a stop is the user's: the run is not requeued
            if run_id in self._queue:
                self._queue.remove(run_id)
                run.set_status(PAUSED, "stopped before it started")
            elif run.status not in (DONE, FAILED, PAUSED):
                run.request_stop(PAUSED)
            return "paused"

    def resume(self, run_id: int, session: str) -> bool:
        """Queue a paused run again (its holder only); False when it cannot continue."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or session not in self._holders[run_id] or run.status != PAUSED:
                return False
            run.rearm()
            run.set_status(QUEUED)
            self._queue.append(run_id)
            self._schedule_locked()
            return True

    def set_prefix(self, run_id: int, session: str, prefix: str) -> bool:
        """The run's next samples start from ``prefix`` (every session following it sees them, each
        sample with its prefix); a paused or finished run samples both its weights from it now.
        False when ``session`` does not hold the run."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or session not in self._holders[run_id]:
                return False
            run.set_prefix(prefix)
        run.resample()          # outside the pool's lock: a short generation from the published bytes
        return True

    def release(self, run_id: int, session: str) -> None:
        """``session`` no longer holds the run; a run nobody holds is cancelled and forgotten."""
        with self._lock:
            self._release_locked(run_id, session)

    # ------------------------------------------------------------------ introspection
    def stats(self) -> dict:
        """Counts of runs, queued runs, running runs and live worker threads."""
        with self._lock:
            running = sum(1 for r in self._runs.values() if r.status == "running")
            return {"runs": len(self._runs), "queued": len(self._queue), "running": running,
                    "threads": sum(t.is_alive() for t in self._threads)}

    def join(self, timeout: float = 30.0) -> bool:
        """Wait for every worker thread to exit (the queue must drain); True if all did."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads:
                return True
            if time.monotonic() > deadline:
                return False
            threads[0].join(min(0.5, max(0.0, deadline - time.monotonic())))

    def close(self, timeout: float = 30.0) -> bool:
        """Cancel every run and wait for the threads."""
        with self._lock:
            for rid in list(self._runs):
                self._drop_locked(rid)
        return self.join(timeout)

    # ------------------------------------------------------------------ internals (hold _lock)
    def _release_locked(self, run_id: int, session: str) -> None:
        holders = self._holders.get(run_id)
        if holders is None:
            return
        holders.pop(session, None)
        if not holders:
            self._drop_locked(run_id)

    def _make_room_locked(self) -> None:
        """Room for one more run: refuse when max_runs are queued or training; else forget the
        oldest paused / finished runs beyond max_runs in all."""
        active = [r for r, run in self._runs.items() if run.status in (QUEUED, RUNNING)]
        if len(active) >= self.max_runs:
            raise TrainRefused(f"This server is training or queueing {len(active)} runs (its cap); "
                               "try again in a minute.")
        idle = sorted(r for r in self._runs if r not in active)
        while len(self._runs) >= self.max_runs and idle:
            self._drop_locked(idle.pop(0))

    def _fair_order_locked(self) -> list[int]:
        """The queue in serving order: round by round, each session's next waiting run, first come
        first served within a round."""
        rounds: dict[str, int] = {}
        keyed = []
        for pos, rid in enumerate(self._queue):
            owner = self._owner.get(rid, "")
            keyed.append((rounds.get(owner, 0), pos, rid))
            rounds[owner] = rounds.get(owner, 0) + 1
        return [rid for _, _, rid in sorted(keyed)]

    def _drop_locked(self, run_id: int) -> None:
        run = self._runs.pop(run_id, None)
        self._holders.pop(run_id, None)
        self._owner.pop(run_id, None)
        if run is None:
            return
        if self._shared.get(run.key) == run_id:
            del self._shared[run.key]
        if run_id in self._queue:
            self._queue.remove(run_id)
            run.set_status(CANCELLED, "stopped: no session follows this run any more")
        run.request_stop(CANCELLED)

    def _expire_locked(self, force: bool = False) -> None:
        """Release sessions whose last heartbeat is older than heartbeat_s (at most once a second)."""
        now = time.monotonic()
        if not force and now - self._last_expire < 1.0:
            return
        self._last_expire = now
        for rid, holders in list(self._holders.items()):
            for session, seen in list(holders.items()):
                if now - seen > self.heartbeat_s:
                    self._release_locked(rid, session)

    def _schedule_locked(self) -> None:
        self._threads = {t for t in self._threads if t.is_alive()}
        while self._queue and len(self._threads) < self.workers:
            t = threading.Thread(target=self._worker, name=f"rnnviz-train-{self._next_id}", daemon=True)
            self._threads.add(t)
            t.start()

    def _tick(self, run: TrainingRun, since: float) -> None:
        """Once per step of ``run`` (training since ``since``): heartbeats, and its turn ends after
        slice_s seconds while another run waits."""
        with self._lock:
            self._expire_locked()
            if self._queue and time.monotonic() - since > self.slice_s and run.run_id in self._runs:
                self._yielding.add(run.run_id)
                run.request_stop(PAUSED)

    def _worker(self) -> None:
        """Take queued runs one after another; exit when the queue is empty."""
        me = threading.current_thread()
        while True:
            with self._lock:
                if not self._queue:
                    self._threads.discard(me)
                    return
                rid = self._fair_order_locked()[0]
                self._queue.remove(rid)
                run = self._runs[rid]
            since = time.monotonic()
            run.work(self._construct, lambda: self._tick(run, since))
            with self._lock:
                if run.run_id in self._yielding:
                    self._yielding.discard(run.run_id)
                    if run.status == PAUSED and run.run_id in self._runs:
                        run.rearm()              # its turn is over: back in the queue, continues later
                        run.set_status(QUEUED, "waiting: another session's run has its turn")
                        self._queue.append(run.run_id)
            with self._lock:
                if run.status == PAUSED and self._shared.get(run.key) == run.run_id:
                    del self._shared[run.key]      # paused by a limit-free stop: private from now on
