"""The server-wide caches: shipped and uploaded models (``st.cache_resource``) and the
byte-bounded trace store, all shared read-only by every session."""

from __future__ import annotations

import streamlit as st

import rnnviz
from rnnviz import CharRNN, CheckpointError, Trace
from rnnviz.cache import ByteLRU
from rnnviz.checkpoint import resolve_checkpoint

#: Model keys of uploaded checkpoints start with this (then the first 16 hex digits of the sha256).
UPLOAD_PREFIX = "upload:"
#: Byte budget of the shared trace cache (a 5,000-character trace of a 256-unit LSTM is ~31 MB).
TRACE_CACHE_BYTES = 384 * 2**20


def checkpoint_fingerprint(model_key: str) -> str:
    """What identifies a model's weights in the caches: an upload's digest, or the shipped file's
    path, size and modification time (so a retrained or swapped checkpoint is never served stale)."""
    if model_key.startswith(UPLOAD_PREFIX):
        return model_key
    try:
        path = resolve_checkpoint(model_key)
        stat = path.stat()
    except (CheckpointError, OSError):
        return f"missing:{model_key}"
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


@st.cache_resource(max_entries=16, show_spinner=False)
def _shipped_model(name: str, fingerprint: str) -> CharRNN:
    return rnnviz.load_model(name)


def shipped_model(name: str) -> CharRNN:
    """A shipped checkpoint, loaded once per server (and again only if its file changes), shared
    read-only by all sessions."""
    return _shipped_model(name, checkpoint_fingerprint(name))


shipped_model.clear = _shipped_model.clear  # type: ignore[attr-defined]  # as st.cache_resource had


@st.cache_resource(max_entries=8, show_spinner=False)
def uploaded_model(digest: str, _data: bytes, filename: str) -> CharRNN:
    """An uploaded checkpoint, keyed by the sha256 of its bytes (validated by rnnviz)."""
    return rnnviz.load_model_bytes(_data, name=filename)


def get_model(model_key: str) -> CharRNN:
    """The model named ``model_key``: a shipped checkpoint, or an upload of this session."""
    if model_key.startswith(UPLOAD_PREFIX):
        data = st.session_state.get("upload_bytes", {}).get(model_key)
        if data is None:
            raise CheckpointError("The uploaded checkpoint is no longer in this session; upload it again.")
        digest = model_key[len(UPLOAD_PREFIX):]
        return uploaded_model(digest, data, st.session_state["upload_names"][model_key])
    return shipped_model(model_key)


@st.cache_resource(max_entries=1, show_spinner=False)   # one store; its contents are bounded by bytes
def trace_store() -> ByteLRU:
    """One per server: traces bounded by bytes (TRACE_CACHE_BYTES), 64 entries and 1 h, shared
    read-only by every session (no copy per hit, unlike st.cache_data)."""
    return ByteLRU(TRACE_CACHE_BYTES, max_entries=64, ttl=3600)


def cached_trace(model_key: str, text: str) -> Trace:
    """The trace of ``text`` through the model named ``model_key``, from the shared byte-bounded
    LRU cache (keyed by the checkpoint's fingerprint too). Read-only: never modify its tensors."""
    key = (model_key, checkpoint_fingerprint(model_key), text)
    return trace_store().get_or_compute(key, lambda: rnnviz.trace(get_model(model_key), text))


def shipped_names() -> list[str]:
    """The names of the shipped checkpoints."""
    return [info.name for info in rnnviz.list_checkpoints()]
