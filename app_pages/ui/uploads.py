"""Uploaded and trained checkpoints, kept for the sessions that made them, within two bounds.

- Per session: at most MAX_UPLOADS_PER_SESSION uploads (trained models have their own cap,
  app_pages.ui.trained.MAX_TRAINED); a new one releases the oldest that is not on screen, and the
  page says so.
- Server-wide: the kept bytes of every session together stay under SERVER_BYTES; past it the least
  recently used checkpoint (of any session, never the one just added) is released. A session whose
  model was released is told to upload it again (get_model raises CheckpointError).

The bytes live here, not in the session state, so a session's share can be released from outside
it. Identical files (the same sha256 key) are kept once, for every session holding them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import streamlit as st

#: Uploads one session keeps (the oldest not on screen is released first).
MAX_UPLOADS_PER_SESSION = 3
#: Bytes of kept checkpoints, all sessions together (a checkpoint is at most 64 MiB).
SERVER_BYTES = 768 * 2**20
#: Session-state keys: the names the picker shows, and this session's uploads, oldest first.
NAMES, ORDER = "upload_names", "upload_order"


@dataclass
class _Kept:
    data: bytes
    holders: set[str] = field(default_factory=set)
    used: float = 0.0


class UploadStore:
    """key → bytes, with the sessions holding each; bounded by SERVER_BYTES (LRU)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def put(self, key: str, data: bytes, holder: str) -> None:
        with self._lock:
            kept = self._kept.setdefault(key, _Kept(data))
            kept.holders.add(holder)
            kept.used = time.monotonic()
            self._kept.move_to_end(key)
            while self.nbytes() > SERVER_BYTES and len(self._kept) > 1:
                self._kept.popitem(last=False)           # least recently used, never `key`

    def get(self, key: str, holder: str) -> bytes | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or holder not in kept.holders:
                return None
            kept.used = time.monotonic()
            self._kept.move_to_end(key)
            return kept.data

    def release(self, key: str, holder: str) -> None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                kept.holders.discard(holder)
                if not kept.holders:
                    del self._kept[key]

    def nbytes(self) -> int:
        """Bytes kept now (call with the lock held, or accept a moment's staleness)."""
        return sum(len(k.data) for k in self._kept.values())

    def held_by(self, holder: str) -> list[str]:
        with self._lock:
            return [k for k, v in self._kept.items() if holder in v.holders]


@st.cache_resource(show_spinner=False)
def upload_store() -> UploadStore:
    """One per server."""
    return UploadStore()


def _session() -> str:
    from app_pages.ui.trained import session_id      # (trained imports this module)
    return session_id()


def keep(key: str, data: bytes, label: str, *, upload: bool = True) -> str | None:
    """Keep ``data`` for this session under ``key`` (shown as ``label``). For an upload, when the
    session then holds more than MAX_UPLOADS_PER_SESSION, the oldest one not on screen is released;
    returns a note naming it (None when nothing was released)."""
    upload_store().put(key, data, _session())
    names = st.session_state.setdefault(NAMES, {})
    names[key] = label
    if not upload:
        return None
    order = [k for k in st.session_state.setdefault(ORDER, []) if k != key and k in names] + [key]
    released = []
    while len(order) > MAX_UPLOADS_PER_SESSION:
        old = next((k for k in order if k not in (key, st.session_state.get("ckpt"))), None)
        if old is None:
            break
        order.remove(old)
        released.append(names.get(old, old))
        drop(old)
    st.session_state[ORDER] = order
    if not released:
        return None
    return (f"Released {', '.join(released)} to keep this session's memory bounded (a session keeps "
            f"{MAX_UPLOADS_PER_SESSION} uploads); upload it again to see it.")


def data_of(key: str) -> bytes | None:
    """This session's bytes of ``key``, or None (never kept here, or released)."""
    return upload_store().get(key, _session())


def drop(key: str) -> None:
    """Release ``key`` from this session (its name leaves the picker)."""
    upload_store().release(key, _session())
    st.session_state.setdefault(NAMES, {}).pop(key, None)
