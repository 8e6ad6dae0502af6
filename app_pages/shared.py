"""The thin Streamlit layer shared by every view: cached model and trace, the sidebar, the context.

No model math lives here: every number comes from ``rnnviz``; this module only wires widgets,
caching and the URL together.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

import rnnviz
from rnnviz import CharRNN, CheckpointError, TextError, Trace
from rnnviz import views
from rnnviz.cache import ByteLRU
from rnnviz.checkpoint import resolve_checkpoint


_STARTUP_FROZEN = False


def freeze_startup_objects() -> None:
    """Once per process: move every object alive now (the modules of torch, plotly, pandas,
    streamlit, rnnviz …, about 250,000 objects) out of the garbage collector's view (gc.freeze).

    Streamlit runs a full gc.collect(2) after every script run; over those objects it costs
    about 0.11 CPU-s per rerun — most of the server's own work for a light view. Frozen, the
    collection scans only what sessions created since, and still frees their cycles."""
    global _STARTUP_FROZEN
    if not _STARTUP_FROZEN:
        import pandas  # noqa: F401  (the views import these anyway; load them before freezing)
        import plotly.graph_objects  # noqa: F401

        import rnnviz.gradients  # noqa: F401
        import rnnviz.units  # noqa: F401
        gc.freeze()
        _STARTUP_FROZEN = True


_WARMUP_STARTED = False


def start_warmup() -> None:
    """Once per process, unless RNNVIZ_WARMUP=0, in a background thread: compile (or load from
    numba's disk cache) the gradient kernels, so the first Gradients view does not wait for the
    compiler, then build the shipped checkpoints' default unit indexes
    (rnnviz.units.prebuild_indexes), so the first visit to Units does not stall a class for
    3–20 s per checkpoint. The tests turn it off (tests/conftest.py)."""
    global _WARMUP_STARTED
    if _WARMUP_STARTED or os.environ.get("RNNVIZ_WARMUP", "1") == "0":
        return
    _WARMUP_STARTED = True
    from rnnviz import kernels, units

    def warm_up() -> None:
        kernels.warm_up()          # compile or load the gradient kernels (first run on a machine: ~10 s)
        units.prebuild_indexes()

    threading.Thread(target=warm_up, name="rnnviz-warmup", daemon=True).start()


_RUN_LOG_LOCK = threading.Lock()


def log_script_run(page: str, started: float) -> None:
    """If RNNVIZ_RUN_LOG names a file, append "<unix time> <seconds> <page>" for this script run
    (started: time.perf_counter() at the top of app.py). tools/loadtest.py reads it to report the
    server's own time per update apart from the browsers'. Off by default."""
    path = os.environ.get("RNNVIZ_RUN_LOG")
    if not path:
        return
    with _RUN_LOG_LOCK, open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{time.time():.3f} {time.perf_counter() - started:.4f} {page}\n")


DEFAULT_CHECKPOINT = "timemachine-lstm"
DEFAULT_TEXT = "the time machine by h. g. wells"
#: Longest text the page traces (characters). Longer pastes are cut, with a visible notice.
MAX_PAGE_CHARS = 5_000
PRESETS = {
    "The Time Machine (title)": DEFAULT_TEXT,
    "Time traveller": "the time traveller as we shall call him for now was explaining",
    "Shakespeare": "KING:\nGood morrow, friends; what news from the northern camp?",
    "Python": "def f(x):\n    return [x * (x + 1) for x in range(10)]\n",
}
_UPLOAD_PREFIX = "upload:"
#: Characters of the text kept in the URL (longer texts: the link holds the first ones).
MAX_URL_TEXT = 2_000
#: Query-parameter prefixes of the views (a view drops the other views' keys from the URL).
VIEW_PREFIXES = ("hs.", "pr.", "st.", "gen.", "gr.", "cmp.", "units.", "lesson.")

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


@dataclass
class Context:
    """What every view needs: the chosen model, the text and its trace (None when untraceable)."""

    model_key: str
    model: CharRNN
    text: str
    trace: Trace | None
    error: str | None = None
    truncated_from: int | None = None
    lecture: bool = False           #: lecture mode: controls hidden, larger fonts
    font_size: int = 12             #: base font size for figures (larger in lecture mode)
    digest: str = ""                #: short hash of model_key + text (figure meta)
    fingerprint: str = ""           #: checkpoint_fingerprint(model_key): add it to cache keys


def checkpoint_fingerprint(model_key: str) -> str:
    """What identifies a model's weights in the caches: an upload's digest, or the shipped file's
    path, size and modification time (so a retrained or swapped checkpoint is never served stale)."""
    if model_key.startswith(_UPLOAD_PREFIX):
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
    if model_key.startswith(_UPLOAD_PREFIX):
        data = st.session_state.get("upload_bytes", {}).get(model_key)
        if data is None:
            raise CheckpointError("The uploaded checkpoint is no longer in this session; upload it again.")
        digest = model_key[len(_UPLOAD_PREFIX):]
        return uploaded_model(digest, data, st.session_state["upload_names"][model_key])
    return shipped_model(model_key)


#: Byte budget of the shared trace cache (a 5,000-character trace of a 256-unit LSTM is ~31 MB).
TRACE_CACHE_BYTES = 384 * 2**20


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
    return [info.name for info in rnnviz.list_checkpoints()]


def _sync_query_param(key: str, value: str) -> None:
    if st.query_params.get(key) != value:
        st.query_params[key] = value


# --------------------------------------------------------------------------- URL state
def url_default(widget_key: str, param: str, default: Any, parse: Callable[[str], Any] = str,
                valid: Callable[[Any], bool] | None = None) -> None:
    """Before creating a widget with ``key=widget_key``: seed its value from the URL parameter
    ``param`` (parsed and validated; ``default`` when missing or invalid), once per session."""
    if widget_key in st.session_state:
        return
    value = default
    raw = st.query_params.get(param)
    if raw is not None:
        try:
            parsed = parse(raw)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and (valid is None or valid(parsed)):
            value = parsed
    st.session_state[widget_key] = value


def keep_choice(widget_key: str, options: list, default: Any, format_func: Callable[[Any], str] = str) -> None:
    """Before a selectbox / radio / select_slider with ``key=widget_key``: make its state one of
    ``options`` (else ``default``). Before the widget runs, Streamlit may hold its raw browser value
    (the formatted label, or a list of them for select_slider); that is mapped back to the option."""
    if widget_key not in st.session_state:
        return
    value = st.session_state[widget_key]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    try:
        if any(type(value) is type(o) and value == o for o in options):
            st.session_state[widget_key] = value
            return
    except Exception:  # noqa: BLE001 - any odd value is simply replaced
        pass
    labels = [format_func(o) for o in options]
    if isinstance(value, str) and value in labels:
        st.session_state[widget_key] = options[labels.index(value)]
    else:
        st.session_state[widget_key] = default


def window_start(prefix: str, T: int, width: int) -> tuple[int, int]:
    """The "Window start (step)" slider of a view whose charts show ``width`` of ``T`` steps.

    prefix: the view's URL prefix without the dot (``"hs"``, ``"pr"``); the start lives in the URL
    as ``<prefix>.start``. Returns (start, stop) clamped by ``views.window_bounds``.
    """
    start = 0
    if T > width:
        key = f"{prefix}_start"
        url_default(key, f"{prefix}.start", 0, int, lambda v: v >= 0)
        keep_int(key, 0, T - width, 0)
        with controls(f"{prefix}-window"):
            start = st.slider("Window start (step)", 0, T - width, key=key)
        url_set(f"{prefix}.start", start)
    return views.window_bounds(T, start, width)


def keep_int(widget_key: str, lo: int, hi: int, default: int) -> int:
    """Before a slider / number_input with ``key=widget_key``: make its state an int in [lo, hi]
    (clamped; ``default`` when unreadable; the raw browser value of a slider is a list) and return it."""
    value = st.session_state.get(widget_key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    try:
        number = int(round(float(value)))
    except (TypeError, ValueError, OverflowError):
        number = default
    number = max(lo, min(hi, number))
    st.session_state[widget_key] = number
    return number


def url_set(param: str, value: Any) -> None:
    """Write a view's state into the URL (``st.query_params``) so the link reproduces the view."""
    _sync_query_param(param, str(value))


def view_params(prefix: str) -> None:
    """Drop the URL keys of other views (a copied link then only holds this view's state)."""
    for key in list(st.query_params.keys()):
        if key.startswith(VIEW_PREFIXES) and not key.startswith(prefix):
            del st.query_params[key]


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~:")


def md(text: str) -> str:
    """Backslash-escape markdown (and $…$ LaTeX) specials of user text shown through st.markdown,
    st.caption, st.warning… (Streamlit never renders raw HTML there; this keeps the text literal)."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def parse_bool(raw: str) -> bool:
    return raw.lower() in ("1", "true", "yes", "on")


def controls(name: str):
    """A container for a view's controls; lecture mode hides it (CSS on its ``st-key-`` class)."""
    return st.container(key=f"controls-{name}")


def show_chart(fig, ctx: "Context", key: str, filename: str | None = None,
               text_independent: bool = False) -> None:
    """st.plotly_chart with the modebar always visible (its camera button downloads a PNG),
    lecture-mode fonts, and ``layout.meta`` naming the text (the page benchmark waits on it).

    text_independent: the chart does not depend on the typed text (e.g. the W_hh spectrum). Its
    meta then says so instead of carrying the text's digest, so its spec, and with it Streamlit's
    element id, stays the same across text commits and the browser keeps the drawn chart instead
    of drawing it again (0.2–0.3 CPU-s per chart in headless Chromium)."""
    if ctx.lecture:
        fig.update_layout(font=dict(size=ctx.font_size))
    # Titles on the left, under the modebar (always shown, top right), so the two never overlap.
    if fig.layout.title.text:
        top = (fig.layout.margin.t if fig.layout.margin.t is not None else 40) + 36
        fig.update_layout(title=dict(x=0.0, xanchor="left", xref="paper", y=1.0, yref="container",
                                     yanchor="top", pad=dict(t=38)), margin=dict(t=max(top, 78)))
    fig.update_layout(meta={"chart": key, "text_independent": True} if text_independent
                      else {"rnnviz": ctx.digest, "chart": key})
    # Browser cost: on a linear/log axis Plotly's default ticklabeloverflow ("hide past div") measures
    # every tick label against the page (one forced layout each); with 80 per-character ticks that
    # was 0.15-0.2 CPU-s per chart in headless Chromium, per update. "allow" skips it; a label
    # past the chart's edge is then clipped by the chart instead of hidden (category axes
    # already default to "allow").
    fig.update_xaxes(ticklabeloverflow="allow")
    fig.update_yaxes(ticklabeloverflow="allow")
    config = {"displayModeBar": True, "displaylogo": False,
              "toImageButtonOptions": {"format": "png", "filename": filename or f"rnnviz-{key}",
                                       "scale": 2}}
    st.plotly_chart(fig, key=key, config=config, theme=None)


# --------------------------------------------------------------------------- sidebar
def sidebar() -> Context:
    """Render the sidebar (lecture toggle, checkpoint picker, upload, text, model card, export)
    and return the context."""
    names = shipped_names()
    qp = st.query_params
    with st.sidebar:
        st.header("rnnviz")
        url_default("lecture", "lecture", False, parse_bool)
        lecture = st.toggle("Lecture mode", key="lecture",
                            help="Hide the controls and enlarge fonts for a projector.")
        st.html(STALE_CSS)
        if lecture:
            st.html(LECTURE_CSS)
        options = list(names)
        uploads = st.session_state.setdefault("upload_names", {})
        options += list(uploads)
        default = qp.get("ckpt", DEFAULT_CHECKPOINT)
        if default not in options:
            default = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in options else (options[0] if options else None)
        if default is None:
            st.error("No checkpoints found in checkpoints/.")
            st.stop()
        with controls("sidebar"):
            label = lambda k: uploads.get(k, k)  # noqa: E731
            if "ckpt" not in st.session_state:
                st.session_state["ckpt"] = default
            keep_choice("ckpt", options, default, label)
            model_key = st.selectbox("Checkpoint", options, format_func=label, key="ckpt")
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
            text = st.text_area("Text", key="text", height=120,
                                help=f"Up to {MAX_PAGE_CHARS:,} characters are traced. "
                                     "Press Ctrl+Enter (or click away) to apply.")
    if not model_key.startswith(_UPLOAD_PREFIX):
        _sync_query_param("ckpt", model_key)
    _sync_query_param("text", text[:MAX_URL_TEXT])
    if lecture:
        _sync_query_param("lecture", "1")
    elif "lecture" in st.query_params:
        del st.query_params["lecture"]
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
    ctx = Context(model_key, model, text, trace, error, truncated_from, lecture=lecture,
                  font_size=18 if lecture else 12, digest=digest,
                  fingerprint=checkpoint_fingerprint(model_key))
    with st.sidebar:
        model_card(model)
        if trace is not None:
            with controls("export"):
                export(ctx)
    st.session_state["rnnviz_ctx"] = ctx
    return ctx


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


def model_card(model: CharRNN) -> None:
    d = model.describe()
    prov = getattr(model, "provenance", {}) or {}

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        text = str(v)
        return text if len(text) <= 60 else text[:57] + "…"

    st.caption("Model card")
    rows = {"name": getattr(model, "name", "—"), "cell": d["cell"], "layers": d["layers"],
            "H": d["hidden_size"], "|V|": d["vocab_size"], "parameters": f"{d['parameters']:,}",
            "preprocessing": d["preprocessing"], "corpus": prov.get("corpus", "—"),
            "val loss (nats/char)": prov.get("val_loss", "—")}
    for extra in ("val_perplexity", "steps", "epochs", "train_seconds"):
        if extra in prov:
            rows[extra.replace("_", " ")] = prov[extra]
    st.table({"": list(rows), "value": [fmt(v) for v in rows.values()]})


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
    trace = ctx.trace
    if trace is not None and trace.preprocessed:
        st.caption(f"This model was trained on {ctx.model.config.preprocessing}-cleaned text, so your "
                   "text was cleaned the same way before it was read (see Predictions for the "
                   "cleaned text).")
    if len(ctx.text) > MAX_URL_TEXT:
        st.caption(f"The page link holds the first {MAX_URL_TEXT:,} characters of the text.")
    return True
