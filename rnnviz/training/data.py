"""Training data: the raw text, its vocabulary, the train/val split and d2l minibatches (T, B).

The procedure is documented in :mod:`rnnviz.training`; every function here is deterministic.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import torch

from ..corpora import Corpus, load_corpus, read_text_file, sha256_text
from .config import TrainConfig
from ..vocab import UNK, Vocab


def build_vocab(text: str, min_count: int = 1) -> Vocab:
    """``<unk>`` + every character seen ≥ min_count times, most frequent first (ties: code point)."""
    counts = Counter(text)
    chars = sorted((c for c, k in counts.items() if k >= min_count), key=lambda c: (-counts[c], ord(c)))
    return Vocab([UNK, *chars])


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): ``split = int(len(text) * (1 - val_fraction))``; val is ``text[split:]``."""
    split = int(len(text) * (1.0 - val_fraction))
    return text[:split], text[split:]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the generator behind epoch ``epoch``'s offset and shuffle."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def step_seed(seed: int, step: int) -> int:
    """Seed of the model's dropout generator (its masks) before optimiser step ``step``."""
    return (seed * 998_244_353 + step * 104_729 + 1) % (2**63)


def epoch_batches(ids: torch.Tensor, batch_size: int, num_steps: int, partition: str,
                  seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The minibatches (X, Y), each (T, B) long, of one epoch (d2l §9.3, deterministic)."""
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
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


def load_training_text(cfg: TrainConfig, corpora_dir: str | os.PathLike | None = None) -> Corpus:
    """The raw corpus named by ``cfg.corpus`` (looked up in ``corpora_dir``, default
    :data:`rnnviz.corpora.CORPORA_DIR`) or read from ``cfg.text``."""
    if cfg.corpus:
        return load_corpus(cfg.corpus, python_max_chars=cfg.python_max_chars, folder=corpora_dir)
    if cfg.text:
        text = read_text_file(cfg.text)
        return Corpus(Path(cfg.text).stem, text, sha256_text(text), str(cfg.text), {})
    raise ValueError("give --text FILE or --corpus NAME")


def text_corpus(cfg: TrainConfig, text: str) -> Corpus:
    """An in-memory corpus for ``text`` (named after cfg.corpus, cfg.text's stem, or "text")."""
    return Corpus(cfg.corpus or (Path(cfg.text).stem if cfg.text else "text"), text,
                  sha256_text(text), "in-memory", {})
