"""The Train view's samples and its two sets of weights (issue 28: the model opened was not the one
whose samples the class watched, and the prefix was the memorised opening of the text).

A run keeps two sets of weights: the *latest* (what the optimiser holds now, which wrote the samples
seen during training) and the *best validation* ones (the lowest validation loss so far). Every
:class:`Sample` says which weights wrote it, at which step, from which prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..generate import generate
from ..model import CharRNN

LATEST, BEST = "latest", "best validation"
#: The samples' prefix until the user types another: short, so what follows is the model's own.
DEFAULT_PREFIX = "the "
SAMPLE_CHARS = 120
TEMPERATURE = 0.6
#: The most characters a prefix may have (the page's input has the same cap).
MAX_PREFIX = 200


@dataclass(frozen=True)
class Sample:
    """``text``: what the ``weights`` (LATEST or BEST) of ``step`` wrote after ``prefix`` (the prefix as
    the model read it, after its preprocessing)."""

    step: int
    weights: str
    prefix: str
    text: str


def take_sample(model: CharRNN, step: int, weights: str, prefix: str) -> Sample:
    """A sample of SAMPLE_CHARS characters at TEMPERATURE with its own generator (seed 0), so two
    samples differ only by the weights and the prefix. A prefix that the model's preprocessing empties
    (or an empty one) is replaced by DEFAULT_PREFIX."""
    prefix = prefix[:MAX_PREFIX]
    try:
        got = generate(model, prefix, SAMPLE_CHARS, temperature=TEMPERATURE, seed=0)
    except ValueError:                       # empty after preprocessing
        got = generate(model, DEFAULT_PREFIX, SAMPLE_CHARS, temperature=TEMPERATURE, seed=0)
    return Sample(int(step), weights, got.prefix, got.generated)


def weights_provenance(prov: dict, history: list[dict], step: int, weights: str) -> dict:
    """``prov`` (the trainer's provenance, which describes the best weights) for ``weights``: the best
    ones get ``weights`` added; the latest ones also their own step and the losses of the evaluation
    at that step (the history's row with that step, if there is one)."""
    out = {**prov, "weights": weights}
    if weights == BEST:
        return out
    out["steps"] = int(step)
    row = next((r for r in reversed(history) if r.get("step") == step), None)
    if row is not None:
        val = float(row["val_loss"])
        out.update(train_loss=row["train_loss"], val_loss=val, val_perplexity=math.exp(val),
                   val_bits_per_char=val / math.log(2))
    return out
