"""The corpus sample units are measured on: the held-out tail of the training corpus
(:func:`training_sample`) or the tail of any corpus (:func:`corpus_sample`); see :mod:`rnnviz.units`."""

from __future__ import annotations

import hashlib
import os

from ..model import CharRNN
from ..vocab import preprocess
from .refs import UnitsError

#: Characters of corpus sample indexed per checkpoint (the last ones of the corpus).
SAMPLE_CHARS = 20_000


class CorpusMissing(UnitsError):
    """The corpus a sample needs is not on this machine; ``name`` says which (see
    :func:`rnnviz.corpora.fetch` to download a registered one)."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


def _load_corpus_text(name: str, python_max_chars: int | None = None,
                      corpora_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(full text, where it came from) for a corpus name from provenance, looked up in
    ``corpora_dir`` (default: rnnviz.corpora.CORPORA_DIR). Raises CorpusMissing."""
    from .. import corpora

    stem = name[:-4] if name.endswith(".txt") else name
    try:
        c = (corpora.load_corpus(stem, python_max_chars=python_max_chars, folder=corpora_dir)
             if python_max_chars else corpora.load_corpus(stem, folder=corpora_dir))
    except (OSError, ValueError) as err:
        raise CorpusMissing(f"The training corpus {name!r} is not available: {err}", stem) from None
    return c.text, c.source


def held_out_sample(prepared: str, val_fraction: float, max_chars: int = SAMPLE_CHARS) -> tuple[str, int]:
    """(sample, start of the validation part) of an already preprocessed corpus: the last
    ``max_chars`` characters of its last ``val_fraction`` (as rnnviz.training splits it), from the
    first line start in that window when there is one."""
    val_start = int(len(prepared) * (1 - val_fraction))
    start = max(val_start, len(prepared) - max_chars)
    if start > val_start:
        nl = prepared.find("\n", start, start + 1000)
        if nl != -1 and nl + 1 < len(prepared):
            start = nl + 1
    return prepared[start:], val_start


def training_sample(model: CharRNN, max_chars: int = SAMPLE_CHARS, full_text: str | None = None,
                    corpora_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """The model's own held-out text where its provenance says how it was split.

    With ``provenance["val_fraction"]`` = v (rnnviz.training validates on the last v of the
    *preprocessed* corpus), the sample is :func:`held_out_sample`; otherwise :func:`corpus_sample`.
    The text is returned already preprocessed. ``full_text``: the raw corpus when the caller has it
    (training does), else it is loaded by name from ``corpora_dir``. Raises UnitsError when the corpus is unknown, or
    CorpusMissing when it is not on this machine.
    """
    prov = getattr(model, "provenance", None) or {}
    name = prov.get("corpus")
    if not name or not isinstance(name, str):
        raise UnitsError("The checkpoint does not name its training corpus; provide a text instead.")
    vf = prov.get("val_fraction")
    if not isinstance(vf, (int, float)) or not 0 < vf < 1:
        text, desc = corpus_sample(name, max_chars, corpora_dir)
        return preprocess(text, model.config.preprocessing), desc
    tc = prov.get("train_config") if isinstance(prov.get("train_config"), dict) else {}
    pmax = tc.get("python_max_chars") if isinstance(tc.get("python_max_chars"), int) else None
    full = full_text if full_text is not None else _load_corpus_text(name, pmax, corpora_dir)[0]
    prepared = preprocess(full, model.config.preprocessing)
    want = prov.get("corpus_sha256")
    same = not isinstance(want, str) or want == hashlib.sha256(full.encode("utf-8")).hexdigest()
    sample, val_start = held_out_sample(prepared, vf, max_chars)
    return sample, (f"{name}: last {len(sample):,} characters of the held-out validation part "
                    f"(last {vf:g} of the {model.config.preprocessing}-preprocessed corpus, "
                    f"{len(prepared) - val_start:,} characters)"
                    + ("" if same else "; NOTE: this corpus differs from the training one "
                       "(sha256 mismatch), so the split is approximate"))


def corpus_sample(name: str, max_chars: int = SAMPLE_CHARS,
                  corpora_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """The last ``max_chars`` characters of corpus ``name`` (looked up in ``corpora_dir``), from
    the first line start in them.

    Returns (sample text, a one-line description). Raises UnitsError when the corpus is missing.
    """
    full, source = _load_corpus_text(name, corpora_dir=corpora_dir)
    if max_chars <= 0:
        raise UnitsError("The sample size must be positive.")
    start = max(0, len(full) - max_chars)
    if start > 0:
        nl = full.find("\n", start, start + 1000)
        if nl != -1 and nl + 1 < len(full):
            start = nl + 1
    sample = full[start:]
    return sample, f"{name}: last {len(sample):,} of {len(full):,} characters (from {start:,})"
