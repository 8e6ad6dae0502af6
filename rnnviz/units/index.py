"""The per-checkpoint unit index (:class:`UnitIndex`: z-scores and average ranks of every unit over
a sample) and its shared byte-bounded cache :data:`INDEXES` (:func:`get_index`,
:func:`prebuild_indexes`); see :mod:`rnnviz.units`."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import features as F
from ..model import CharRNN
from ..serving.cache import ByteLRU
from ..serving.deadline import check
from ..serving.threads import one_thread
from ..trace import MAX_TRACE_CHARS, trace
from ..vocab import preprocess
from .refs import UnitRef, UnitsError, activation_matrix, model_fingerprint, unit_refs
from .sample import SAMPLE_CHARS, corpus_sample, training_sample

log = logging.getLogger(__name__)

#: Cap on N·U for one index: each of its two (N, U) float32 matrices stays ≤ 64 MiB.
MAX_INDEX_ELEMENTS = 16_000_000
#: The module-level index cache (:func:`get_index`, shared by the page's sessions): at most this many
#: bytes (a 20,000-character index is ~70 MB for 256 units, ~120 MB for 384) and this many entries.
INDEX_CACHE_BYTES = 768 * 2**20
INDEX_CACHE_ENTRIES = 8
#: How many feature vectors one index keeps (LRU).
FEATURE_CACHE_SIZE = 32
#: Ranks are computed this many columns at a time (bounds the sort's temporary memory).
_CHUNK = 128


def average_ranks(a: Tensor) -> Tensor:
    """Column-wise 1-based ranks of ``a`` (N, U), ties sharing their mean rank; float32 (N, U).

    Works on contiguous rows of ``a.T``, ``_CHUNK`` units at a time (bounded temporary memory).
    """
    N, U = a.shape
    out = torch.empty((U, N), dtype=torch.float32)
    pos = torch.arange(N, dtype=torch.int64)
    place = (pos + 1).to(torch.float32)
    for c0 in range(0, U, _CHUNK):
        check()
        block = a[:, c0:c0 + _CHUNK].T.contiguous()                  # (k, N)
        k = block.shape[0]
        vals, idx = torch.sort(block, dim=1)
        avg = place.expand(k, N).clone()                              # no ties: rank = place
        tied = (vals[:, 1:] == vals[:, :-1]).any(1)
        if bool(tied.any()):                     # only units with ties need the group means
            rows = torch.nonzero(tied).squeeze(1)
            v = vals[rows]
            m = rows.numel()
            new = torch.ones((m, N), dtype=torch.bool)
            new[:, 1:] = v[:, 1:] != v[:, :-1]
            last = torch.ones((m, N), dtype=torch.bool)
            last[:, :-1] = new[:, 1:]
            p = pos.expand(m, N)
            first_of_group = torch.cummax(torch.where(new, p, torch.zeros_like(p)), dim=1).values
            last_rev = torch.where(last, p, torch.full_like(p, N)).flip(1)
            last_of_group = torch.cummin(last_rev, dim=1).values.flip(1)
            avg[rows] = ((first_of_group + last_of_group + 2).to(torch.float64) / 2.0).float()
        out[c0:c0 + k].scatter_(1, idx, avg)
    return out.T.contiguous()


@dataclass
class UnitIndex:
    """Per-checkpoint precomputation over a corpus sample (see the module docstring).

    text: the sample as traced (N characters); units: U unit refs; mean, std, scale: (U,) float64
    (scale = max |activation|, 1 for an all-zero unit); z: (N, U) float32 standardised
    activations; ranks: (N, U) float32 average ranks.
    """

    key: str
    source: str
    text: str
    units: list[UnitRef]
    mean: Tensor
    std: Tensor
    z: Tensor
    ranks: Tensor
    scale: Tensor
    cell: str
    build_seconds: float = 0.0
    _features: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __len__(self) -> int:
        return len(self.text)

    @property
    def num_units(self) -> int:
        return len(self.units)

    def column(self, unit: UnitRef) -> int:
        return self.units.index(unit)

    def activations(self, unit: UnitRef, start: int = 0, end: int | None = None) -> Tensor:
        """Raw activations of one unit over sample[start:end] (recovered as μ + σ·z), float32."""
        j = self.column(unit)
        return (self.z[start:end, j].double() * self.std[j] + self.mean[j]).float()

    def scaled(self, acts: Tensor, cols: Tensor | None = None) -> Tensor:
        """Raw activations (T, U) (or (T, k) of columns ``cols``) divided by the sample's
        max |activation| of each unit: the hypothesis scale (float64)."""
        scale = self.scale if cols is None else self.scale[cols]
        return acts.double() / scale

    def raw(self, cols: Tensor) -> Tensor:
        """Raw sample activations (N, k) of columns ``cols``, recovered as μ + σ·z (float64)."""
        return self.z[:, cols].double() * self.std[cols] + self.mean[cols]

    def feature(self, name_or_regex: str) -> Tensor:
        """A feature over the sample (``rnnviz.features`` name or ``regex:<pattern>``), cached."""
        if name_or_regex in self._features:
            self._features.move_to_end(name_or_regex)
            return self._features[name_or_regex]
        values = F.feature_values(name_or_regex, self.text)
        self._features[name_or_regex] = values
        while len(self._features) > FEATURE_CACHE_SIZE:
            self._features.popitem(last=False)
        return values


def index_capacity(model: CharRNN, max_chars: int = SAMPLE_CHARS) -> int:
    """How many sample characters an index of ``model`` keeps (see MAX_INDEX_ELEMENTS)."""
    U = len(unit_refs(model))
    return max(1, min(max_chars, MAX_INDEX_ELEMENTS // U, MAX_TRACE_CHARS))


@torch.inference_mode()
def build_index(model: CharRNN, text: str, *, key: str = "", source: str = "",
                max_chars: int = SAMPLE_CHARS) -> UnitIndex:
    """Trace ``text`` (after the model's preprocessing, cut to :func:`index_capacity`) once and
    precompute z-scores and ranks of every unit, and every built-in feature of the sample.
    Raises UnitsError for an empty text."""
    t0 = time.perf_counter()
    prepared = preprocess(text, model.config.preprocessing)[:index_capacity(model, max_chars)]
    if len(prepared) < 2:
        raise UnitsError("The sample text needs at least two characters.")
    with one_thread():
        tr = trace(model, prepared, preprocess_text=False, gates=model.has_cell_state)
    units = unit_refs(model)
    acts = activation_matrix(tr)
    del tr
    a64 = acts.double()
    mean = a64.mean(0)
    std = a64.std(0, unbiased=False)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    z = torch.where(std > 0, (a64 - mean) / safe, torch.zeros_like(a64)).to(torch.float32)
    del a64
    ranks = average_ranks(acts)
    scale = acts.abs().amax(0).double()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    index = UnitIndex(key or model_fingerprint(model), source or "text", prepared, units, mean, std,
                      z, ranks, scale, model.config.cell)
    for name, values in F.features(prepared).items():   # built-in features: precomputed too
        index._features[name] = values
    index.build_seconds = time.perf_counter() - t0
    return index


#: Every index built through :func:`get_index`, shared read-only (thread-safe; each key built once).
INDEXES = ByteLRU(INDEX_CACHE_BYTES, max_entries=INDEX_CACHE_ENTRIES)


def get_index(model: CharRNN, text: str | None = None, *, corpus: str | None = None,
              max_chars: int = SAMPLE_CHARS, source: str | None = None,
              fingerprint: str | None = None, corpora_dir: str | os.PathLike | None = None) -> UnitIndex:
    """The index of ``model`` over ``text``, or, when ``text`` is None, over the tail of corpus
    ``corpus`` or else the model's held-out sample (:func:`training_sample`; corpora looked up in
    ``corpora_dir``), from :data:`INDEXES`.

    source: how the index names its sample (default: from the sample, or "text").
    fingerprint: :func:`model_fingerprint` of ``model`` if the caller already has it."""
    if text is None:
        text, sample_source = (corpus_sample(corpus, max_chars, corpora_dir) if corpus
                               else training_sample(model, max_chars, corpora_dir=corpora_dir))
        source = source or sample_source
    source = source or "text"
    fingerprint = fingerprint or model_fingerprint(model)
    key = (fingerprint, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), max_chars, source)
    return INDEXES.get_or_compute(
        key, lambda: build_index(model, text, key=fingerprint, source=source, max_chars=max_chars))


def prebuild_indexes(names: list[str] | None = None, max_chars: int = SAMPLE_CHARS, *,
                     checkpoint_dir: str | os.PathLike | None = None,
                     corpora_dir: str | os.PathLike | None = None) -> list[str]:
    """Build the default index (the held-out training sample) of shipped checkpoints ahead of time,
    e.g. in a background thread when the server starts, so the first visit to the Units view does
    not wait 3–20 s. Models are loaded afresh (the index key is the weights' fingerprint, so the
    page's shared model finds these entries). Checkpoints come from ``checkpoint_dir`` and corpora
    from ``corpora_dir`` (the library's defaults when None). Returns the names indexed; a
    checkpoint that cannot be loaded or sampled is skipped (and logged)."""
    from ..checkpoint import list_checkpoints, load_model

    done = []
    for info in list_checkpoints(checkpoint_dir):
        if names is not None and info.name not in names:
            continue
        try:
            get_index(load_model(info.name, checkpoint_dir), max_chars=max_chars, corpora_dir=corpora_dir)
        except UnitsError as err:       # e.g. its corpus is not on this machine: the page says so
            log.info("no unit index prebuilt for %s: %s", info.name, err)
            continue
        except Exception:   # noqa: BLE001 - a warm-up never takes the server down; the page reports
            log.exception("building the unit index of %s failed", info.name)
            continue
        done.append(info.name)
    return done
