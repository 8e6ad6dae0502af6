"""Character vocabulary with an ``<unk>`` token, and the d2l text cleaning.

The vocabulary maps characters to integer ids. Id 0 is always ``<unk>``: any character the model
never saw maps there, so :meth:`Vocab.encode` never fails; it reports *where* unknown characters
were instead. The remaining ids are the training characters, most frequent first (ties broken by
code point), as d2l's ``Vocab`` does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import torch

UNK = "<unk>"

#: Preprocessing names understood by :func:`preprocess`.
PREPROCESSING = ("none", "d2l")

_D2L_NON_LETTERS = re.compile(r"[^A-Za-z]+")


def d2l_clean(text: str) -> str:
    """The book's cleaning (d2l §9.2): every run of non-letters becomes one space, then lowercase.

    What remains is 26 letters and the space, so with ``<unk>`` the vocabulary has 28 symbols.
    """
    return _D2L_NON_LETTERS.sub(" ", text).lower()


def preprocess(text: str, preprocessing: str) -> str:
    """Apply a named preprocessing (``"none"`` or ``"d2l"``) to ``text``."""
    if preprocessing == "none":
        return text
    if preprocessing == "d2l":
        return d2l_clean(text)
    raise ValueError(f"unknown preprocessing {preprocessing!r}; expected one of {PREPROCESSING}")


@dataclass(frozen=True)
class Encoded:
    """Result of :meth:`Vocab.encode`.

    ids: LongTensor (T,) of vocabulary ids.
    unknown_positions: indices t where ``text[t]`` is not in the vocabulary (mapped to ``<unk>``).
    """

    ids: torch.Tensor
    unknown_positions: tuple[int, ...] = field(default_factory=tuple)

    @property
    def num_unknown(self) -> int:
        return len(self.unknown_positions)


class Vocab:
    """Character <-> id mapping. ``tokens[0]`` is always ``<unk>``."""

    def __init__(self, tokens: list[str]):
        if not tokens or tokens[0] != UNK:
            raise ValueError(f"the first vocabulary token must be {UNK!r}")
        rest = tokens[1:]
        if any(not isinstance(t, str) or len(t) != 1 for t in rest):
            raise ValueError("every vocabulary token after <unk> must be a single character")
        if len(set(rest)) != len(rest):
            raise ValueError("the vocabulary has duplicate characters")
        self.tokens: list[str] = list(tokens)
        self._index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """Build a vocabulary of every character in ``text``, most frequent first."""
        counts = Counter(text)
        chars = sorted(counts, key=lambda c: (-counts[c], ord(c)))
        return cls([UNK, *chars])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, char: str) -> bool:
        return char != UNK and char in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.tokens == self.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def id_of(self, char: str) -> int:
        """Id of one character (0, i.e. ``<unk>``, when unknown)."""
        return self._index.get(char, 0) if char != UNK else 0

    def encode(self, text: str) -> Encoded:
        """Map every character of ``text`` to its id; unknown ones to ``<unk>`` (id 0).

        Never raises for any string. Returns ids (T,) and the positions of unknown characters.
        """
        index = self._index
        ids = [index.get(ch, 0) for ch in text]
        unknown = tuple(t for t, i in enumerate(ids) if i == 0)
        return Encoded(torch.tensor(ids, dtype=torch.long), unknown)

    def decode(self, ids) -> str:
        """Ids back to text; ``<unk>`` becomes U+FFFD so one id is always one character."""
        return "".join("\ufffd" if int(i) == 0 else self.tokens[int(i)] for i in ids)
