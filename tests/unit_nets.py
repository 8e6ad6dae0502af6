"""Hand-built networks whose units are known by construction, and a sample text for them (the
unit finder's and the interventions' tests)."""

from __future__ import annotations

import random

import torch

from rnnviz import ModelConfig, Vocab, build_model

ALPHABET = "ab(c)[d]{e} io\nxyz"


def sample_text(n: int = 800, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def hand_built(cell: str = "rnn_relu", hidden: int = 4, seed: int = 0):
    """Unit 0 counts bracket depth, unit 1 copies "is a vowel", units 2.. are small random ones."""
    tokens = tuple(Vocab.from_text(ALPHABET).tokens)
    model = build_model(ModelConfig(cell, hidden, 1, tokens), seed=seed)
    g = torch.Generator().manual_seed(seed)
    V = len(tokens)
    W_xh = torch.randn(V, hidden, generator=g) * 0.3
    W_hh = torch.randn(hidden, hidden, generator=g) * 0.2
    W_xh[:, :2] = 0.0
    W_hh[:, :2] = 0.0        # units 0 and 1 read nothing but what is set below
    W_hh[:2, 2:] = 0.0       # ... and feed nothing into the random units
    for i, tok in enumerate(tokens):
        if tok in "([{":
            W_xh[i, 0] = 1.0
        elif tok in ")]}":
            W_xh[i, 0] = -1.0
        if tok in "aeiou":
            W_xh[i, 1] = 1.0
    W_hh[0, 0] = 1.0
    model.set_textbook_params(0, {"W_xh": W_xh, "W_hh": W_hh, "b_h": torch.zeros(hidden)})
    return model
