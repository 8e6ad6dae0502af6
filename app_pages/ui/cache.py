"""The server-wide caches: shipped and uploaded models (``st.cache_resource``) and the
byte-bounded trace store, all shared read-only by every session. Every cache of every view keys on
the model's :class:`rnnviz.ref.ModelRef` (``ctx.ref``: name + content hash of the weights)."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

import rnnviz
from rnnviz import CharRNN, CheckpointError, Trace
from rnnviz.serving import cost
from rnnviz.serving.cache import ByteLRU
from rnnviz.checkpoint import resolve_checkpoint
from rnnviz.ref import ModelRef, model_ref

from app_pages.ui.settings import settings
from app_pages.ui.uploads import data_of
from app_pages.ui.work import run_heavy

#: Model keys of uploaded checkpoints start with this (then the first 16 hex digits of the sha256).
UPLOAD_PREFIX = "upload:"
#: Byte budget of the shared trace cache (a 5,000-character trace of a 256-unit LSTM is ~31 MB).
TRACE_CACHE_BYTES = 384 * 2**20


def _file_stamp(name: str) -> tuple[str, int, int] | None:
    """(path, size, mtime_ns) of a shipped checkpoint's file (None when it cannot be found): the
    loader's cache key, so a replaced file is loaded again (and gets a new :class:`ModelRef`)."""
    try:
        path = resolve_checkpoint(name, settings().checkpoint_dir)
        stat = path.stat()
    except (CheckpointError, OSError):
        return None
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@st.cache_resource(max_entries=16, show_spinner=False)
def _shipped_model(name: str, stamp: tuple[str, int, int] | None) -> CharRNN:
    model = rnnviz.load_model(name, settings().checkpoint_dir)
    model_ref(model, name)          # the content hash, once per loaded model
    return model


def shipped_model(name: str) -> CharRNN:
    """A shipped checkpoint, loaded once per server (and again only if its file changes), shared
    read-only by all sessions."""
    return _shipped_model(name, _file_stamp(name))


@st.cache_resource(max_entries=8, show_spinner=False)
def uploaded_model(digest: str, _data: bytes, filename: str) -> CharRNN:
    """An uploaded checkpoint, keyed by the sha256 of its bytes (validated by rnnviz)."""
    model = rnnviz.load_model_bytes(_data, name=filename)
    model_ref(model, UPLOAD_PREFIX + digest)   # the content hash, once per loaded model
    return model


def get_ref(model_key: str, model: CharRNN) -> ModelRef:
    """The identity every cache keys on: ``model_key`` and the content hash of ``model``'s weights
    (computed once per loaded model, see :func:`rnnviz.ref.model_ref`)."""
    return model_ref(model, model_key)


def get_model(model_key: str) -> CharRNN:
    """The model named ``model_key``: a shipped checkpoint, or an upload of this session."""
    if model_key.startswith(UPLOAD_PREFIX):
        data = data_of(model_key)
        if data is None:
            raise CheckpointError("The uploaded checkpoint is no longer kept for this session (the "
                                  "server keeps a few uploads per session, and a bounded total); "
                                  "upload it again.")
        digest = model_key[len(UPLOAD_PREFIX):]
        return uploaded_model(digest, data, st.session_state["upload_names"][model_key])
    return shipped_model(model_key)


@st.cache_resource(max_entries=1, show_spinner=False)   # one store; its contents are bounded by bytes
def trace_store() -> ByteLRU:
    """One per server: traces bounded by bytes (TRACE_CACHE_BYTES), 64 entries and 1 h, shared
    read-only by every session (no copy per hit, unlike st.cache_data)."""
    return ByteLRU(TRACE_CACHE_BYTES, max_entries=64, ttl=3600)


def cached_trace(ref: ModelRef, model: CharRNN, text: str) -> Trace:
    """The trace of ``text`` through ``model`` (identified by ``ref``), from the shared byte-bounded
    LRU cache, keyed (ref.name, ref.digest, text). Read-only: never modify its tensors."""
    key = (ref.name, ref.digest, text)
    return trace_store().get_or_compute(key, lambda: run_heavy(
        "trace", rnnviz.trace, model, text, estimate=cost.estimate("trace", model.config, len(text))))


#: Byte budget of the store of small results derived from a trace (cached_derived).
DERIVED_CACHE_BYTES = 16 * 2**20


@st.cache_resource(max_entries=1, show_spinner=False)   # one store; its contents are bounded by bytes
def derived_store() -> ByteLRU:
    """One per server: small results derived from a trace, bounded by bytes, 512 entries and 1 h."""
    return ByteLRU(DERIVED_CACHE_BYTES, max_entries=512, ttl=3600)


def cached_derived(kind: str, ref: ModelRef, trace: Trace, compute: Callable[[], Any]) -> Any:
    """``compute()``: a small result (``kind``: what it is, e.g. "overflow") that depends only on
    the model ``ref`` and its ``trace``, once per (kind, model, traced text) instead of once per
    script run (a rerun, a moved slider). Keyed on ``trace.text``, the text as traced (after the
    model's preprocessing), which with the model's weights fixes every tensor of the trace.
    Read-only: never modify the result."""
    return derived_store().get_or_compute((kind, ref.name, ref.digest, trace.text), compute)


def shipped_names() -> list[str]:
    """The names of the shipped checkpoints (RNNVIZ_CHECKPOINT_DIR)."""
    return [info.name for info in rnnviz.list_checkpoints(settings().checkpoint_dir)]
