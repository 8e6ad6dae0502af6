"""The thin Streamlit layer shared by every view: cached model and trace, the sidebar, the context.

No model math lives here: every number comes from ``rnnviz``; this module only wires widgets,
caching and the URL together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

import rnnviz
from rnnviz import CharRNN, CheckpointError, TextError, Trace

DEFAULT_CHECKPOINT = "timemachine-lstm"
DEFAULT_TEXT = "the time machine by h. g. wells"
#: Longest text the page traces (characters). Longer pastes are cut, with a visible notice.
MAX_PAGE_CHARS = 5_000
PRESETS = {
    "The Time Machine (title)": DEFAULT_TEXT,
    "Time traveller": "the time traveller for so it will be convenient to speak of him was expounding",
    "Shakespeare": "First Citizen:\nBefore we proceed any further, hear me speak.",
    "Python": "def f(x):\n    return [x * (x + 1) for x in range(10)]\n",
}
_UPLOAD_PREFIX = "upload:"


@dataclass
class Context:
    """What every view needs: the chosen model, the text and its trace (None when untraceable)."""

    model_key: str
    model: CharRNN
    text: str
    trace: Trace | None
    error: str | None = None
    truncated_from: int | None = None


@st.cache_resource(max_entries=16, show_spinner=False)
def shipped_model(name: str) -> CharRNN:
    """A shipped checkpoint, loaded once per server and shared read-only by all sessions."""
    return rnnviz.load_model(name)


@st.cache_resource(max_entries=8, show_spinner=False)
def uploaded_model(digest: str, _data: bytes, filename: str) -> CharRNN:
    """An uploaded checkpoint, keyed by the sha256 of its bytes (validated by rnnviz)."""
    return rnnviz.load_model_bytes(_data, name=filename)


def get_model(model_key: str) -> CharRNN:
    if model_key.startswith(_UPLOAD_PREFIX):
        data = st.session_state.get("upload_bytes", {}).get(model_key)
        if data is None:
            raise CheckpointError("The uploaded checkpoint is no longer in this session; upload it again.")
        digest = model_key[len(_UPLOAD_PREFIX):]
        return uploaded_model(digest, data, st.session_state["upload_names"][model_key])
    return shipped_model(model_key)


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def cached_trace(model_key: str, text: str) -> Trace:
    """The trace of ``text`` through the model named ``model_key`` (bounded LRU cache)."""
    return rnnviz.trace(get_model(model_key), text)


def shipped_names() -> list[str]:
    return [info.name for info in rnnviz.list_checkpoints()]


def _sync_query_param(key: str, value: str) -> None:
    if st.query_params.get(key) != value:
        st.query_params[key] = value


def sidebar() -> Context:
    """Render the sidebar (checkpoint picker, upload, text, model card) and return the context."""
    names = shipped_names()
    qp = st.query_params
    with st.sidebar:
        st.header("rnnviz")
        options = list(names)
        uploads = st.session_state.setdefault("upload_names", {})
        options += list(uploads)
        default = qp.get("ckpt", DEFAULT_CHECKPOINT)
        if default not in options:
            default = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in options else (options[0] if options else None)
        if default is None:
            st.error("No checkpoints found in checkpoints/.")
            st.stop()
        model_key = st.selectbox("Checkpoint", options, index=options.index(default),
                                 format_func=lambda k: uploads.get(k, k), key="ckpt")
        upload = st.file_uploader("…or upload a .safetensors checkpoint", type=["safetensors"])
        if upload is not None:
            data = upload.getvalue()
            key = _UPLOAD_PREFIX + hashlib.sha256(data).hexdigest()[:16]
            try:
                uploaded_model(key[len(_UPLOAD_PREFIX):], data, upload.name)
            except CheckpointError as err:
                st.error(f"Upload refused: {err}")
            else:
                st.session_state.setdefault("upload_bytes", {})[key] = data
                uploads[key] = f"{upload.name} (uploaded)"
                st.success(f"Loaded {upload.name}; pick it above.")
        preset = st.selectbox("Preset text", ["(custom)", *PRESETS], key="preset")
        initial = qp.get("text", DEFAULT_TEXT)
        if "text" not in st.session_state:
            st.session_state["text"] = initial
        if preset != "(custom)" and st.session_state.get("_last_preset") != preset:
            st.session_state["text"] = PRESETS[preset]
        st.session_state["_last_preset"] = preset
        text = st.text_area("Text", key="text", height=120)
    _sync_query_param("ckpt", model_key)
    _sync_query_param("text", text[:2000])
    try:
        model = get_model(model_key)
    except CheckpointError as err:
        st.error(str(err))
        st.stop()
    truncated_from = None
    if len(text) > MAX_PAGE_CHARS:
        truncated_from = len(text)
        text = text[:MAX_PAGE_CHARS]
    trace, error = None, None
    try:
        trace = cached_trace(model_key, text)
    except TextError as err:
        error = str(err)
    with st.sidebar:
        model_card(model)
    ctx = Context(model_key, model, text, trace, error, truncated_from)
    st.session_state["rnnviz_ctx"] = ctx
    return ctx


def model_card(model: CharRNN) -> None:
    d = model.describe()
    prov = getattr(model, "provenance", {}) or {}
    st.caption("Model card")
    rows = {"cell": d["cell"], "layers": d["layers"], "H": d["hidden_size"], "|V|": d["vocab_size"],
            "preprocessing": d["preprocessing"], "corpus": prov.get("corpus", "—"),
            "val loss (nats/char)": prov.get("val_loss", "—")}
    st.table({"": list(rows), "value": [str(v) for v in rows.values()]})


def context() -> Context:
    """The context built by the sidebar on this run (views call this)."""
    return st.session_state["rnnviz_ctx"]


def notices(ctx: Context) -> bool:
    """Show the text notices; return False when there is nothing to plot."""
    if ctx.truncated_from:
        st.warning(f"The text has {ctx.truncated_from:,} characters; the page traces the first "
                   f"{MAX_PAGE_CHARS:,}.")
    if ctx.error:
        st.info(ctx.error)
        return False
    return True
