"""No shared global random state (issue 27, finding 11).

Every random draw in the package uses its own torch.Generator: building models, the Lesson's word
model and its cached results, sampling, the Trainer's dropout masks. Numbers are computed quietly
first, then again while a neighbour thread runs (a real training with dropout, and a thread that
reseeds torch's global generator the way the Trainer used to), and compared for equality; the
training's own losses must equal a quiet run's too.
"""

from __future__ import annotations

import sys
import threading

import torch

import rnnviz
from rnnviz import ModelConfig, Vocab, build_model
from rnnviz.generate import generate
from rnnviz.lesson.exercises import bigram_exact_rnn
from rnnviz.lesson.words import word_model
from rnnviz.training import TrainConfig, Trainer

TEXT = "the time machine by h. g. wells, a story of the future " * 2
TOKENS = tuple(Vocab.from_text(TEXT).tokens)


def _results() -> dict[str, list[torch.Tensor]]:
    out = {}
    for cell in rnnviz.cells.SPECS:
        m = build_model(ModelConfig(cell, 48, 2, TOKENS), seed=0)
        out[f"build {cell}"] = [p.detach().clone() for p in m.parameters()]
    out["word model"] = [p.detach().clone() for p in word_model(4, seed=0, train_steps=20)[0].parameters()]
    out["bigram"] = [bigram_exact_rnn(TEXT[:40]).rnn.clone()]
    g = generate(build_model(ModelConfig("lstm", 16, 1, TOKENS), seed=1), "the ", 40, seed=5)
    out["sample"] = [torch.tensor(g.ids)]
    return out


class _Neighbour(threading.Thread):
    """What a training does to the global RNG: reseed before every step, draw dropout masks."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self):
        step = 0
        while not self.stop.is_set():
            torch.manual_seed(step)
            torch.nn.functional.dropout(torch.ones(256), 0.5, training=True)
            torch.rand(64)
            step += 1


def test_numbers_do_not_depend_on_a_neighbour_reseeding_the_global_rng():
    quiet = _results()
    neighbour = _Neighbour()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)         # switch threads often: a race shows in a few rounds
    neighbour.start()
    try:
        differ = []
        for _ in range(15):
            busy = _results()
            differ += [k for k in quiet if not all(torch.equal(a, b) for a, b in zip(quiet[k], busy[k]))]
    finally:
        neighbour.stop.set()
        neighbour.join()
        sys.setswitchinterval(interval)
    assert not differ, f"changed by the neighbour's RNG use: {sorted(set(differ))} ({len(differ)} times)"


def test_build_model_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_model(ModelConfig("gru", 8, 1, TOKENS), seed=0)
    build_model(ModelConfig("lstm", 8, 1, TOKENS))
    assert torch.equal(before, torch.get_rng_state())


def _training(tmp_path) -> Trainer:
    cfg = TrainConfig(cell="lstm", hidden=16, layers=2, dropout=0.3, batch_size=4, num_steps=8,
                      lr=1e-2, max_steps=60, eval_every=20, patience=0, seed=3, progress=False, out="")
    return Trainer(cfg, TEXT * 20)


def test_training_and_pages_do_not_change_each_other(tmp_path):
    quiet_pages = _results()
    quiet_run = _training(tmp_path)
    quiet_run.run()
    trainer, other = _training(tmp_path), _Neighbour()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    worker = threading.Thread(target=trainer.run, daemon=True)
    worker.start()
    other.start()
    try:
        differ = []
        while worker.is_alive():
            busy = _results()
            differ += [k for k in quiet_pages
                       if not all(torch.equal(a, b) for a, b in zip(quiet_pages[k], busy[k]))]
    finally:
        other.stop.set()
        worker.join()
        other.join()
        sys.setswitchinterval(interval)
    assert not differ, f"changed by the training: {sorted(set(differ))}"
    assert trainer.state.train_losses == quiet_run.state.train_losses
    assert trainer.state.val_losses == quiet_run.state.val_losses
