"""Character n-gram baselines (n = 1 … 5) with interpolated Kneser–Ney smoothing: what a model
without recurrence, reading only the last n − 1 characters, gets on the same held-out text.

Smoothing: interpolated Kneser–Ney (Chen & Goodman 1998, "interpolated KN" with one discount per
order). For a model of order n and a context h of k − 1 characters (k ≤ n)::

    P_k(w | h) = max(c_k(h w) − D_k, 0) / c_k(h·)  +  D_k · N₁₊(h •) / c_k(h·) · P_{k−1}(w | h′)

h′ = h without its first character; c_k(h·) = Σ_w c_k(h w); N₁₊(h •) = the number of distinct w
with c_k(h w) > 0. The highest order (k = n) uses raw counts; every lower order uses
continuation counts c_k(h w) = N₁₊(• h w), the number of distinct characters seen before h w.
When c_k(h·) = 0 (a context never seen) P_k = P_{k−1}. The recursion ends at P_0(w) = 1 / |V|.
Discounts: Ney's estimate D_k = n₁ / (n₁ + 2 n₂) from the counts-of-counts of that table (n₁
grams seen once, n₂ twice), 0.5 when undefined; or one fixed ``discount`` for every order.

Vocabulary V: the characters of the training text plus one ``<unk>`` slot that every character not
in the training text shares (as the RNN's ``<unk>`` does), so P(· | h) sums to 1 over V for every
context h, also for contexts with unseen characters (they back off to shorter contexts).

Scoring (:meth:`NGram.surprisal`): −log P(text[t] | text[t−n+1 … t−1]) in nats for t = 1 … T−1,
aligned with ``rnnviz.trace.Trace.surprisal`` (the RNN predicts text[t+1] from its state after
text[t]); near the start of a text the context is what there is (order min(n, t + 1)).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: The highest order fitted by :func:`fit_ngrams`.
MAX_ORDER = 5
#: The name of the vocabulary slot shared by every character not seen in training.
UNK = "<unk>"
#: :func:`model_baseline` fits on at most this many characters (the end of the training split).
MAX_TRAIN_CHARS = 2_000_000


class BaselineError(ValueError):
    """No baseline can be fitted for a model (no named corpus, corpus missing); says why."""


def _ney_discount(counts: Counter | dict) -> float:
    n1 = sum(1 for v in counts.values() if v == 1)
    n2 = sum(1 for v in counts.values() if v == 2)
    return n1 / (n1 + 2 * n2) if n1 > 0 and n1 + 2 * n2 > 0 else 0.5


def _context_tables(grams: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(Σ_w c(h w), N₁₊(h •)) per context h of a table of k-grams."""
    total: dict[str, int] = {}
    types: dict[str, int] = {}
    for g, c in grams.items():
        h = g[:-1]
        total[h] = total.get(h, 0) + c
        types[h] = types.get(h, 0) + 1
    return total, types


@dataclass
class Counts:
    """Raw and continuation count tables of a training text for orders 1 … max_order."""

    max_order: int
    chars: frozenset[str]
    raw: dict[int, Counter] = field(repr=False)
    cont: dict[int, dict[str, int]] = field(repr=False)
    ctx: dict[tuple[int, bool], tuple[dict[str, int], dict[str, int]]] = field(repr=False)

    @classmethod
    def fit(cls, text: str, max_order: int = MAX_ORDER) -> "Counts":
        """Count every k-gram of ``text`` (k ≤ max_order). Raises ValueError for an empty text."""
        if not text:
            raise ValueError("The training text is empty.")
        if not 1 <= max_order <= 10:
            raise ValueError(f"max_order must be in 1..10, got {max_order}")
        raw = {k: Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, max_order + 1)}
        cont: dict[int, dict[str, int]] = {}
        for k in range(1, max_order):
            c: dict[str, int] = {}
            for g in raw[k + 1]:
                c[g[1:]] = c.get(g[1:], 0) + 1
            cont[k] = c
        ctx = {(k, True): _context_tables(raw[k]) for k in raw}
        ctx.update({(k, False): _context_tables(cont[k]) for k in cont})
        return cls(max_order, frozenset(text), raw, cont, ctx)


class NGram:
    """An interpolated Kneser–Ney character model of one order (see the module docstring)."""

    def __init__(self, counts: Counts, order: int, discount: float | None = None):
        if not 1 <= order <= counts.max_order:
            raise ValueError(f"order must be in 1..{counts.max_order}, got {order}")
        if discount is not None and not 0 < discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.counts, self.order = counts, order
        self.vocab = tuple(sorted(counts.chars)) + (UNK,)
        self.discounts = {(k, top): (discount if discount is not None else
                                     _ney_discount(counts.raw[k] if top else counts.cont[k]))
                          for k in range(1, order + 1) for top in (True, False) if top or k < counts.max_order}

    def prob(self, context: str, ch: str) -> float:
        """P(ch | the last order − 1 characters of ``context``); ``ch`` outside the training text
        (or ``UNK``) gets the ``<unk>`` slot's probability."""
        k = min(self.order, len(context) + 1)
        return self._p(ch, context[len(context) - (k - 1):] if k > 1 else "", k, True)

    def _p(self, w: str, h: str, k: int, top: bool) -> float:
        if k == 0:
            return 1.0 / len(self.vocab)
        top = top or k == self.counts.max_order
        total, types = self.counts.ctx[(k, top)]
        lower = self._p(w, h[1:], k - 1, False)
        n = total.get(h, 0)
        if n == 0:
            return lower
        table = self.counts.raw[k] if top else self.counts.cont[k]
        d = self.discounts[(k, top)]
        return max(table.get(h + w, 0) - d, 0.0) / n + d * types[h] / n * lower

    def distribution(self, context: str) -> dict[str, float]:
        """P(· | context) over the vocabulary (the training characters and ``UNK``)."""
        return {w: self.prob(context, w) for w in self.vocab}

    def surprisal(self, text: str) -> np.ndarray:
        """(T−1,) float64 −log P(text[t] | preceding context), nats, t = 1 … T−1 (module docstring)."""
        n = self.order
        return np.array([-math.log(self.prob(text[max(0, t - n + 1):t], text[t]))
                         for t in range(1, len(text))], dtype=np.float64)

    def nats_per_char(self, text: str) -> float:
        """Mean surprisal over ``text`` (t = 1 … T−1). Raises ValueError for fewer than 2 characters."""
        if len(text) < 2:
            raise ValueError("Scoring needs at least two characters.")
        return float(self.surprisal(text).mean())


def fit_ngrams(train: str, max_order: int = MAX_ORDER, discount: float | None = None) -> dict[int, NGram]:
    """Models of order 1 … max_order, all from one count of ``train``: {n: NGram}."""
    counts = Counts.fit(train, max_order)
    return {n: NGram(counts, n, discount) for n in range(1, max_order + 1)}


@dataclass(frozen=True)
class Baseline:
    """n-gram models of a checkpoint's training split. models: {n: NGram}; train_chars: how many
    characters they were fitted on; held_out: the validation part (preprocessed); source: in words."""

    models: dict[int, NGram]
    train_chars: int
    held_out: str
    source: str


def training_split(model) -> tuple[str, str, float, int | None]:
    """What ``model`` was trained on, as a hashable key: (corpus name, preprocessing, validation
    fraction, the python corpus' size cap or None). Models trained on the same split share one
    n-gram fit. Raises BaselineError when the provenance names no corpus or split."""
    prov = getattr(model, "provenance", None) or {}
    name, vf = prov.get("corpus"), prov.get("val_fraction")
    if not isinstance(name, str) or not isinstance(vf, (int, float)) or not 0 < vf < 1:
        raise BaselineError("The checkpoint does not record its training corpus and split.")
    tc = prov.get("train_config") if isinstance(prov.get("train_config"), dict) else {}
    pmax = tc.get("python_max_chars")
    return (name.removesuffix(".txt"), model.config.preprocessing, float(vf),
            pmax if isinstance(pmax, int) else None)


def model_baseline(model, max_order: int = MAX_ORDER, max_train_chars: int = MAX_TRAIN_CHARS,
                   corpora_dir=None) -> Baseline:
    """Fit n-grams on the training split of ``model``'s corpus (:func:`training_split`)."""
    return split_baseline(training_split(model), max_order, max_train_chars, corpora_dir)


def split_baseline(split: tuple[str, str, float, int | None], max_order: int = MAX_ORDER,
                   max_train_chars: int = MAX_TRAIN_CHARS, corpora_dir=None) -> Baseline:
    """Fit n-grams on a training split as rnnviz.training made it: the corpus ``split[0]``, after
    the preprocessing ``split[1]``, all but the last ``split[2]`` (the held-out part); at most the
    last ``max_train_chars`` characters of that split (memory). ``corpora_dir``: the folder of the
    corpora (default: rnnviz.corpora's). Raises BaselineError when the corpus is missing."""
    from .corpora import load_corpus
    from .vocab import preprocess

    name, preprocessing, vf, pmax = split
    try:
        corpus = load_corpus(name, folder=corpora_dir,
                             **({"python_max_chars": pmax} if pmax is not None else {}))
    except (OSError, ValueError) as err:
        raise BaselineError(f"The training corpus {name!r} is not available: {err}") from None
    prepared = preprocess(corpus.text, preprocessing)
    cut = int(len(prepared) * (1 - vf))
    train = prepared[max(0, cut - max_train_chars):cut]
    return Baseline(fit_ngrams(train, max_order), len(train), prepared[cut:],
                    f"{name}: {len(train):,} characters of the training split")
