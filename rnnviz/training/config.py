"""TrainConfig: every training option in one dataclass (the CLI flags are its fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..corpora import PYTHON_CORPUS_MAX_CHARS
from ..model import CELLS
from ..vocab import PREPROCESSING


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
    threads: int = _opt("torch CPU threads (1: a char-RNN's small sequential steps gain little from "
                        "more, and lose much on a shared machine; 0: leave torch's setting)", default=1)
    timeline: int = _opt("keep this many log-spaced weight snapshots (2..24, 0: none) in "
                         "<out>.timeline, see rnnviz.timeline", default=16)
    resume: str = _opt("resume from this checkpoint (and its .trainstate)", default="")
    progress: bool = _opt("show a tqdm progress bar", default=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
