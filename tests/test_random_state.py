"""No shared global random state (issue 27, finding 11).

Every random draw in the package uses its own torch.Generator: building models, the Lesson's word
model and its cached results, sampling. A neighbour thread that does what a training does to torch's
global generator (reseed every step, draw dropout masks) must not change any of those numbers:
each is computed quietly first, then again many times while the neighbour runs, and compared.
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
