"""The sidebar every page shares: lecture mode, checkpoint picker and upload, the text, the model
card and the CSV export. It builds the :class:`Context` the views read."""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from app_pages.ui.cache import (UPLOAD_PREFIX, cached_trace, get_model, get_ref, shipped_names,
                                uploaded_model)
from app_pages.ui.charts import controls
from app_pages.ui.context import Context
from app_pages.ui.lecture import LECTURE_CSS, hidden
from app_pages.ui.text import MAX_PAGE_CHARS, MAX_URL_TEXT, PRESETS
from app_pages.ui.uploads import keep
from app_pages.ui.url import new_run, url_drop, url_set, use
from app_pages.ui.work import LIMITS, limit_message
from app_pages.ui.settings import settings
from rnnviz import CharRNN, CheckpointError, TextError, views
from rnnviz.serving import cost

DEFAULT_CHECKPOINT = "timemachine-lstm"
#: Views (url_path) that open on another model until the user picks one: model, and the one line
#: the view shows to say why.
PAGE_CHECKPOINTS = {
    "lesson": ("timemachine-rnn", "Opened on timemachine-rnn: §6.3 is about the plain RNN. "
                                  "Pick another model in the sidebar to compare."),
    "step": ("timemachine-rnn", "Opened on timemachine-rnn, the plain RNN of §6.3 (fewest terms "
                                "per step). Pick another model in the sidebar."),
}


def sidebar(page: str = "") -> Context:
    """Render the sidebar (lecture toggle, checkpoint picker, upload, text, model card, export)
    and return the context. ``page``: the current view's url_path (its default model)."""
    new_run()
    with st.sidebar:
        st.header("rnnviz")
        lecture = _lecture_toggle()
        options, uploads, default = _checkpoint_options()
        note = _page_default(page, options)
        # What a teacher changes in front of the class (the model, the text) stays in lecture mode;
        # the uploader is a setting and hides with the others.
        with controls("sidebar-model", navigation=True):
            model_key = _checkpoint_picker(options, uploads, default)
        with hidden("upload", "sidebar"):
            _upload()
        with controls("sidebar-text", navigation=True):
            text = _text_input()
    _sync_url(model_key, text, lecture)
    ctx = _build_context(model_key, text, lecture)
    ctx.model_note = note if model_key == PAGE_CHECKPOINTS.get(page, ("",))[0] else ""
    with st.sidebar:
        model_card(ctx.model)
        if ctx.trace is not None:
            with hidden("export", "sidebar"):
                export(ctx)
    st.session_state["rnnviz_ctx"] = ctx
    return ctx


def _lecture_toggle() -> bool:
    """The lecture-mode toggle (URL ``lecture``) and the page CSS it and every page need."""
    use("lecture")
    lecture = st.toggle("Lecture mode", key="lecture",
                        help="Enlarge fonts and controls for a projector; explanations, uploads and exports "
                              "are hidden, every knob of a demonstration stays.")
    if lecture:
        st.html(LECTURE_CSS)
    return lecture


def _checkpoint_options() -> tuple[list[str], dict[str, str], str]:
    """The checkpoints to pick from (shipped, then this session's uploads), the uploads' labels
    (model key → label) and the default pick. Stops the page when there are none."""
    options = shipped_names()
    uploads = st.session_state.setdefault("upload_names", {})
    options += list(uploads)
    default = st.query_params.get("ckpt", DEFAULT_CHECKPOINT)
    if default not in options:
        wanted = default
        default = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in options else (options[0] if options else None)
        if "ckpt" not in st.session_state and default is not None:   # a link opened: say what it named
            st.session_state["_link_missing"] = (wanted, default)
    if default is None:
        st.error("No checkpoints found in checkpoints/.")
        st.stop()
    return options, uploads, default


def _missing_link_notice() -> None:
    """While the page still shows the fallback for a link whose checkpoint is not here, say so."""
    wanted, fallback = st.session_state.get("_link_missing", (None, None))
    if wanted is None or st.session_state.get("ckpt") != fallback:
        st.session_state.pop("_link_missing", None)
        return
    if wanted.startswith(UPLOAD_PREFIX):
        st.warning(f"The link names an uploaded model ({wanted}) that is not on this server: uploads "
                   f"live only in the session that uploaded them. Showing {fallback} instead; upload "
                   "the file again to see it.")
    else:
        st.warning(f"The link names a checkpoint {wanted[:60]!r} that is not on this server; "
                   f"showing {fallback} instead.")


_BEFORE = "_ckpt_before_page_default"


def _page_default(page: str, options: list[str]) -> str:
    """Until the user picks a model (in the picker, by an upload, or by a link naming one), the
    views in PAGE_CHECKPOINTS switch to their own model (the others keep the current one, so the
    Lesson's links into Gradients stay on its model); returns the line saying why."""
    if "ckpt" not in st.session_state and "ckpt" in st.query_params:
        st.session_state["_ckpt_picked"] = True          # a link that names a model
    if str(st.session_state.get("ckpt", "")).startswith(UPLOAD_PREFIX):
        st.session_state["_ckpt_picked"] = True          # an upload was selected
    if st.session_state.get("_ckpt_picked"):
        return ""
    if page not in PAGE_CHECKPOINTS:
        # Back on a view of its own (the navigation clears the URL; a Lesson link names its model
        # and stays on it): the model the session had before a view switched to its own, so Hidden
        # states never silently shows the Lesson's RNN (#28).
        before = st.session_state.get(_BEFORE)
        if before is not None and "ckpt" not in st.query_params and before in options:
            st.session_state["ckpt"] = before
            del st.session_state[_BEFORE]
        return ""
    model, note = PAGE_CHECKPOINTS[page]
    if model not in options:
        return ""
    if st.session_state.get("ckpt", DEFAULT_CHECKPOINT) != model:
        st.session_state.setdefault(_BEFORE, st.session_state.get("ckpt", DEFAULT_CHECKPOINT))
    st.session_state["ckpt"] = model
    return note


def _picked() -> None:
    st.session_state["_ckpt_picked"] = True


def _checkpoint_picker(options: list[str], uploads: dict[str, str], default: str) -> str:
    """The checkpoint selectbox; returns the chosen model key."""
    label = lambda k: uploads.get(k, k)  # noqa: E731
    use("ckpt", default=default, ckpts={k: label(k) for k in options})
    choice = st.selectbox("Checkpoint", options, format_func=label, key="ckpt", on_change=_picked)
    _missing_link_notice()
    return choice


#: Session-state key of the checkpoint uploader (its value: the UploadedFile or None).
UPLOAD_KEY = "ckpt_upload"


def on_upload() -> None:
    """The uploader's on_change callback (runs before the page script): a valid file joins this
    session's checkpoints and is selected at once; the outcome waits in ``upload_notice``."""
    upload = st.session_state.get(UPLOAD_KEY)
    if upload is None:
        st.session_state.pop("upload_notice", None)
        return
    data = upload.getvalue()
    key = UPLOAD_PREFIX + hashlib.sha256(data).hexdigest()[:16]
    try:
        uploaded_model(key[len(UPLOAD_PREFIX):], data, upload.name)
    except CheckpointError as err:
        st.session_state["upload_notice"] = ("error", f"Upload refused: {err}", upload.file_id)
        return
    st.session_state["ckpt"] = key
    released = keep(key, data, f"{upload.name} (uploaded)")
    st.session_state["upload_notice"] = ("success", f"Loaded {upload.name}; it is now the checkpoint "
                                                    "above." + (f" {released}" if released else ""),
                                         upload.file_id)


def _upload() -> None:
    """The checkpoint uploader (see :func:`on_upload`). "Loaded …" shows once, on the run right
    after the upload; a refusal stays while the refused file sits in the uploader."""
    upload = st.file_uploader("…or upload a .safetensors checkpoint", type=["safetensors"],
                              key=UPLOAD_KEY, on_change=on_upload)
    kind, message, file_id = st.session_state.get("upload_notice", (None, None, None))
    if kind is None or upload is None or upload.file_id != file_id:
        st.session_state.pop("upload_notice", None)
    elif kind == "success":
        st.success(message)
        st.session_state.pop("upload_notice")
    else:
        st.error(message)


def _text_input() -> str:
    """The preset picker and the text area (URL ``text``); returns the text as typed."""
    preset = st.selectbox("Preset text", ["(custom)", *PRESETS], key="preset")
    use("text")
    if preset != "(custom)" and st.session_state.get("_last_preset") != preset:
        st.session_state["text"] = PRESETS[preset]
    st.session_state["_last_preset"] = preset
    return st.text_area("Text", key="text", height=120,
                        help=f"Up to {MAX_PAGE_CHARS:,} characters are traced. "
                             "Press Ctrl+Enter (or click away) to apply.")


def _sync_url(model_key: str, text: str, lecture: bool) -> None:
    """Write the sidebar's state into the URL (long texts are cut). An upload is written as its
    ``upload:<digest>`` key, so a link made with it says so where the upload is missing."""
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
    ref = get_ref(model_key, model)
    truncated_from = None
    if len(text) > MAX_PAGE_CHARS:
        truncated_from = len(text)
        text = text[:MAX_PAGE_CHARS]
    trace, error, plan = None, None, None
    try:
        plan = cost.fit("trace", model.config, len(text), what="trace",
                        request_seconds=settings().request_seconds)
        text = text[:plan.steps]
        trace = cached_trace(ref, model, text)
    except TextError as err:
        error = str(err)
    except LIMITS as err:
        error = limit_message("trace", err)
    digest = hashlib.sha256(f"{model_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Context(model_key, model, ref, text, trace, error, truncated_from, lecture=lecture,
                   font_size=18 if lecture else 12, digest=digest, reduced=plan and plan.note)


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
