"""Text generation: the book's ``predict('time traveller ', num_preds, net, vocab)`` (d2l §9.5).

The prefix is read first (warm-up: the state is updated, predictions ignored), then each step
samples the next character from ``softmax(O_t / temperature)`` (optionally restricted to the
``top_k`` most likely characters) and feeds it back in. ``temperature == 0`` is greedy (argmax),
the limit temperature → 0; ties go to the lowest id, as ``torch.argmax``.

The model is never changed: no ``.train()`` / ``.eval()`` call, no gradient; the layers are run
directly without dropout whatever mode the model is in. Randomness comes from a local
``torch.Generator`` seeded with ``seed`` (a fresh random seed when None), never the global RNG.
``<unk>`` (id 0) is never sampled. A model whose output overflows (inf/NaN logits: an exploding
state, output weights near float32's limit) stops generating there; ``overflow_step`` says where.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .serving.deadline import check
from .model import CharRNN
from .vocab import preprocess

#: Cap on generated characters per call.
MAX_GENERATE = 10_000


@dataclass(frozen=True)
class Generation:
    """Result of :func:`generate`.

    prefix: the prefix as the model read it (after its preprocessing); generated: the new text;
    ids: the generated ids; probs[i]: the model's probability P(generated[i] | everything before)
    under the plain softmax (temperature 1, no top-k); sample_probs[i]: the probability it had
    under the distribution actually sampled from (tempered / top-k; 1.0 for greedy).
    """

    prefix: str
    generated: str
    ids: tuple[int, ...]
    probs: tuple[float, ...]
    sample_probs: tuple[float, ...]
    temperature: float
    top_k: int | None
    seed: int | None
    unknown_prefix_positions: tuple[int, ...] = field(default_factory=tuple)
    #: The step (position in ``text``) whose output was inf/NaN, where generation stopped; None if none.
    overflow_step: int | None = None

    @property
    def text(self) -> str:
        """Prefix followed by the generated characters (what d2l's ``predict`` returns)."""
        return self.prefix + self.generated

    @property
    def surprisal(self) -> tuple[float, ...]:
        return tuple(-math.log(p) if p > 0 else math.inf for p in self.probs)


def _step(model: CharRNN, ids: Tensor, state):
    """Run layers (no dropout) on ids (T,) from state [(h (h,), c)]; returns (logits (T,V), state)."""
    outs, new = model.run_layers(model.one_hot(ids), state, dropout=False)   # (T, V) unbatched
    return model.output(outs[-1]), new


def _sample(last: Tensor, temperature: float, top_k: int | None, V: int,
            gen: torch.Generator) -> tuple[int, float]:
    """The next id from finite logits ``last`` (|V|,), and its probability under the distribution
    sampled from (1.0 for greedy); ``<unk>`` never."""
    logp = torch.log_softmax(last.double().cpu(), dim=-1)
    logp[0] = -math.inf  # never emit <unk>
    if temperature == 0:
        return int(torch.argmax(logp)), 1.0
    scores = logp / temperature
    if top_k is not None and top_k < V:
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, -math.inf)
    dist = torch.softmax(scores, dim=-1)
    nxt = int(torch.multinomial(dist, 1, generator=gen))
    return nxt, float(dist[nxt])


def generate(model: CharRNN, prefix: str, n: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None, *, preprocess_prefix: bool = True) -> Generation:
    """Continue ``prefix`` by ``n`` characters. See the module docstring.

    prefix: at least one character (after the model's preprocessing, e.g. d2l lowercasing);
    characters outside the vocabulary are read as ``<unk>``. n: 0 … MAX_GENERATE.
    temperature ≥ 0 (0 = greedy); top_k: keep only the k most likely characters (None/0 = all).
    """
    if not isinstance(prefix, str):
        raise TypeError("prefix must be a string")
    if preprocess_prefix:
        prefix = preprocess(prefix, model.config.preprocessing)
    if not prefix:
        raise ValueError("the prefix is empty: give at least one character to start from")
    if not isinstance(n, int) or not 0 <= n <= MAX_GENERATE:
        raise ValueError(f"n must be an integer in 0..{MAX_GENERATE}, got {n!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number ≥ 0, got {temperature!r}")
    V = model.config.vocab_size
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_k == 0:
        top_k = None
    if seed is None:
        seed = int.from_bytes(os.urandom(7), "little")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    encoded = model.vocab.encode(prefix)
    dev = model.output.weight.device
    out_ids, probs, sprobs = [], [], []
    with torch.no_grad():
        state = model.zero_state()
        logits, state = _step(model, encoded.ids.to(dev), state)
        last = logits[-1]
        overflow = None
        for i in range(n):
            check()
            if not bool(torch.isfinite(last).all()):
                overflow = len(encoded.ids) - 1 + i
                break
            nxt, sp = _sample(last, temperature, top_k, V, gen)
            out_ids.append(nxt)
            probs.append(float(torch.softmax(last.double().cpu(), -1)[nxt]))
            sprobs.append(sp)
            logits, state = _step(model, torch.tensor([nxt], device=dev), state)
            last = logits[-1]
    return Generation(prefix=prefix, generated=model.vocab.decode(out_ids), ids=tuple(out_ids),
                      probs=tuple(probs), sample_probs=tuple(sprobs), temperature=float(temperature),
                      top_k=top_k, seed=seed, unknown_prefix_positions=encoded.unknown_positions,
                      overflow_step=overflow)
