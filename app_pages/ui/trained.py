"""The server's training pool and this session's trained models.

A trained model joins this session's checkpoints exactly as an upload does (kept by
app_pages.ui.uploads, named in ``upload_names``, read by the sidebar and :func:`get_model`), so every view can
open it and no other session can see it.
"""

from __future__ import annotations

import hashlib
import uuid

import streamlit as st

from app_pages.ui.cache import UPLOAD_PREFIX, uploaded_model
from app_pages.ui.settings import settings
from app_pages.ui.uploads import drop, keep
from rnnviz.training.limits import TrainLimits
from rnnviz.training.pool import TrainingPool

#: Trained models kept per session (the oldest is dropped beyond it): the latest and the
#: best-validation weights of the last three runs.
MAX_TRAINED = 6
RUN_KEY = "train_run"


@st.cache_resource(show_spinner=False)
def training_pool() -> TrainingPool:
    """One pool per server (RNNVIZ_TRAIN_WORKERS runs at once, RNNVIZ_TRAIN_MAX_SECONDS each)."""
    s = settings()
    return TrainingPool(workers=s.train_workers, limits=TrainLimits(max_seconds=s.train_max_seconds))


def session_id() -> str:
    """A random id for this browser session (the pool's holder name)."""
    return st.session_state.setdefault("train_session", uuid.uuid4().hex)


def register_trained(data: bytes, label: str, slot: tuple) -> str:
    """Make the checkpoint ``data`` selectable in every view of this session; ``slot`` (the run id
    and which weights) replaces that slot's earlier model. Returns its model key."""
    key = UPLOAD_PREFIX + hashlib.sha256(data).hexdigest()[:16]
    uploaded_model(key[len(UPLOAD_PREFIX):], data, label)      # validates, as for an upload
    slots: dict[tuple, str] = st.session_state.setdefault("trained_slots", {})
    old = slots.pop(slot, None)
    if old and old != key and old != st.session_state.get("ckpt"):
        drop(old)
    slots[slot] = key
    while len(slots) > MAX_TRAINED:
        gone = slots.pop(next(iter(slots)))
        if gone != st.session_state.get("ckpt"):
            drop(gone)
    keep(key, data, f"{label} (trained)", upload=False)
    return key


#: The Train view's settings stay for the whole session (#28: the run belongs to the session, not
#: the view): every Train widget that holds a setting is drawn with these arguments. Streamlit drops a
#: widget's value when the session switches page, before the new page runs, so it cannot be kept
#: from another view; ``persist_state="session"`` keeps it. (The uploader cannot be kept.)
KEPT = {"persist_state": "session"}
LAST_KEY = "train_last"


def keep_training() -> None:
    """On every view but Train: the run belongs to the session, not the view. The run goes on (this
    run of the script is its heartbeat) and its newest snapshot is kept, so coming back to Train shows
    the run — still going, or finished — with its curves and samples (its settings: :data:`KEPT`)."""
    run_id = st.session_state.get(RUN_KEY)
    if run_id is None:
        return
    snap = training_pool().snapshot(run_id, session_id())
    if snap is not None:
        st.session_state[LAST_KEY] = snap


def leave_training() -> None:
    """Let go of this session's run (called when the session shows another view)."""
    st.session_state.pop("train_last", None)
    run_id = st.session_state.pop(RUN_KEY, None)
    if run_id is not None:
        training_pool().release(run_id, session_id())
