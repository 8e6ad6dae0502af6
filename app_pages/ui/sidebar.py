"""The sidebar every page shares: lecture mode, checkpoint picker and upload, the text, the model
card and the CSV export. It builds the :class:`Context` the views read."""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from app_pages.ui.cache import (UPLOAD_PREFIX, cached_trace, checkpoint_fingerprint, get_model,
                                shipped_names, uploaded_model)
from app_pages.ui.charts import controls
from app_pages.ui.context import Context
from app_pages.ui.text import DEFAULT_TEXT, MAX_PAGE_CHARS, MAX_URL_TEXT, PRESETS
from app_pages.ui.url import keep_choice, parse_bool, url_default, url_drop, url_set
from rnnviz import CharRNN, CheckpointError, TextError, views

DEFAULT_CHECKPOINT = "timemachine-lstm"

LECTURE_CSS = """
<style>
html { font-size: 20px; }
[class*="st-key-controls"] { display: none !important; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.25rem; }
[data-testid="stMetricValue"] { font-size: 2.6rem; }
h1 { font-size: 2.6rem !important; }
.rnnviz-text { font-size: 22px !important; }
</style>
"""

#: While a script run is under way Streamlit dims the previous run's elements (``data-stale``) with a
#: 1 s opacity fade that starts after 0.5 s. In headless, software-rendered Chromium the fade repaints
#: the page every frame for that second, on every update that takes over 0.5 s (all of them under
#: load). Keep the dimming and its 0.5 s delay, drop the animation: one repaint instead of ~60.
STALE_CSS = """
<style>
.stElementContainer[data-stale="true"] { transition-duration: 0s !important; }
</style>
"""


def sidebar() -> Context:
    """Render the sidebar (lecture toggle, checkpoint picker, upload, text, model card, export)
    and return the context."""
    with st.sidebar:
        st.header("rnnviz")
        lecture = _lecture_toggle()
        options, uploads, default = _checkpoint_options()
        with controls("sidebar"):
            model_key = _checkpoint_picker(options, uploads, default)
            _upload(uploads)
            text = _text_input()
    _sync_url(model_key, text, lecture)
    ctx = _build_context(model_key, text, lecture)
    with st.sidebar:
        model_card(ctx.model)
        if ctx.trace is not None:
            with controls("export"):
                export(ctx)
    st.session_state["rnnviz_ctx"] = ctx
    return ctx


def _lecture_toggle() -> bool:
    """The lecture-mode toggle (URL ``lecture``) and the page CSS it and every page need."""
    url_default("lecture", "lecture", False, parse_bool)
    lecture = st.toggle("Lecture mode", key="lecture",
                        help="Hide the controls and enlarge fonts for a projector.")
    st.html(STALE_CSS)
    if lecture:
        st.html(LECTURE_CSS)
    return lecture


def _checkpoint_options() -> tuple[list[str], dict[str, str], str]:
    """The checkpoints to pick from (shipped, then this session's uploads), the uploads' labels
    (model key → label) and the default pick (URL ``ckpt``). Stops the page when there are none."""
    options = shipped_names()
    uploads = st.session_state.setdefault("upload_names", {})
    options += list(uploads)
    default = st.query_params.get("ckpt", DEFAULT_CHECKPOINT)
    if default not in options:
        default = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in options else (options[0] if options else None)
    if default is None:
        st.error("No checkpoints found in checkpoints/.")
        st.stop()
    return options, uploads, default


def _checkpoint_picker(options: list[str], uploads: dict[str, str], default: str) -> str:
    """The checkpoint selectbox; returns the chosen model key."""
    label = lambda k: uploads.get(k, k)  # noqa: E731
    if "ckpt" not in st.session_state:
        st.session_state["ckpt"] = default
    keep_choice("ckpt", options, default, label)
    return st.selectbox("Checkpoint", options, format_func=label, key="ckpt")


def _upload(uploads: dict[str, str]) -> None:
    """The checkpoint uploader: a valid upload joins this session's checkpoints (``uploads``)."""
    upload = st.file_uploader("…or upload a .safetensors checkpoint", type=["safetensors"])
    if upload is None:
        return
    data = upload.getvalue()
    key = UPLOAD_PREFIX + hashlib.sha256(data).hexdigest()[:16]
    try:
        uploaded_model(key[len(UPLOAD_PREFIX):], data, upload.name)
    except CheckpointError as err:
        st.error(f"Upload refused: {err}")
    else:
        st.session_state.setdefault("upload_bytes", {})[key] = data
        uploads[key] = f"{upload.name} (uploaded)"
        st.success(f"Loaded {upload.name}; pick it above.")


def _text_input() -> str:
    """The preset picker and the text area (URL ``text``); returns the text as typed."""
    preset = st.selectbox("Preset text", ["(custom)", *PRESETS], key="preset")
    initial = st.query_params.get("text", DEFAULT_TEXT)
    if "text" not in st.session_state:
        st.session_state["text"] = initial
    if preset != "(custom)" and st.session_state.get("_last_preset") != preset:
        st.session_state["text"] = PRESETS[preset]
    st.session_state["_last_preset"] = preset
    return st.text_area("Text", key="text", height=120,
                        help=f"Up to {MAX_PAGE_CHARS:,} characters are traced. "
                             "Press Ctrl+Enter (or click away) to apply.")


def _sync_url(model_key: str, text: str, lecture: bool) -> None:
    """Write the sidebar's state into the URL (uploads are not linkable; long texts are cut)."""
    if not model_key.startswith(UPLOAD_PREFIX):
        url_set("ckpt", model_key)
    url_set("text", text[:MAX_URL_TEXT])
    if lecture:
        url_set("lecture", "1")
    else:
        url_drop("lecture")


def _build_context(model_key: str, text: str, lecture: bool) -> Context:
    """Load the model, cut the text to MAX_PAGE_CHARS and trace it (cached). Stops the page when
    the model cannot be loaded; an untraceable text leaves ``trace`` None and sets ``error``."""
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
    digest = hashlib.sha256(f"{model_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Context(model_key, model, text, trace, error, truncated_from, lecture=lecture,
                   font_size=18 if lecture else 12, digest=digest,
                   fingerprint=checkpoint_fingerprint(model_key))


def export(ctx: Context) -> None:
    """CSV downloads of the trace (built only when clicked); figures: the camera in each chart's
    modebar downloads a PNG."""
    st.caption("Export")
    trace = ctx.trace
    stem = f"rnnviz-{ctx.model_key.replace(':', '-')}-{ctx.digest[:8]}"
    st.download_button("Trace CSV (states, gates, predictions)",
                       data=lambda: views.trace_frame(trace).to_csv(index=False),
                       file_name=f"{stem}-trace.csv", mime="text/csv", key="export_trace")
    st.download_button("Probabilities CSV (P of every character)",
                       data=lambda: views.trace_frame(trace, include_probs=True).to_csv(index=False),
                       file_name=f"{stem}-probs.csv", mime="text/csv", key="export_probs")
    st.caption("PNG of any chart: the camera button (\"Download plot as a PNG\") in the chart's "
               "toolbar, top right.")


def _fmt(v: Any) -> str:
    """A model-card value: floats to 4 significant digits, long values cut to 60 characters."""
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "…"


def model_card(model: CharRNN) -> None:
    """The model card: architecture, size, preprocessing and training provenance."""
    d = model.describe()
    prov = getattr(model, "provenance", {}) or {}
    st.caption("Model card")
    rows = {"name": getattr(model, "name", "—"), "cell": d["cell"], "layers": d["layers"],
            "H": d["hidden_size"], "|V|": d["vocab_size"], "parameters": f"{d['parameters']:,}",
            "preprocessing": d["preprocessing"], "corpus": prov.get("corpus", "—"),
            "val loss (nats/char)": prov.get("val_loss", "—")}
    for extra in ("val_perplexity", "steps", "epochs", "train_seconds"):
        if extra in prov:
            rows[extra.replace("_", " ")] = prov[extra]
    st.table({"": list(rows), "value": [_fmt(v) for v in rows.values()]})
