"""The Train view's text input: a shipped corpus, a pasted text or an uploaded .txt, checked
against the pool's caps, with its size, vocabulary and train/validation split shown."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages.ui.lecture import hidden
from app_pages.ui.settings import settings
from app_pages.ui.trained import KEPT
from rnnviz.corpora import PYTHON_CORPUS, CorpusNotFound, load_corpus, python_stdlib_corpus
from rnnviz.training.data import build_vocab, split_text
from rnnviz.training.limits import TrainLimits, TrainRefused, check_text, decode_text

#: Shipped corpora: name → (label, preprocessing).
CORPORA = {"timemachine": ("The Time Machine (d2l cleaning)", "d2l"),
           "tinyshakespeare": ("Tiny Shakespeare", "none"),
           PYTHON_CORPUS: ("Python standard library source", "none")}
PYTHON_CHARS = 1_000_000
SOURCES = ("Shipped corpus", "Paste a text", "Upload a .txt")


@dataclass(frozen=True)
class TrainText:
    """The text to train on: raw text, its name and the preprocessing the model will apply."""

    text: str
    name: str
    preprocessing: str


@st.cache_resource(max_entries=3, show_spinner="Loading the corpus…")
def _corpus_text(name: str) -> str:
    """A shipped corpus, loaded once per server (read-only, shared)."""
    if name == PYTHON_CORPUS:
        return python_stdlib_corpus(PYTHON_CHARS).text
    return load_corpus(name, folder=settings().corpora_dir).text


def _from_corpus() -> TrainText | None:
    name = st.selectbox("Corpus", list(CORPORA), format_func=lambda n: CORPORA[n][0], key="tr_corpus", **KEPT)
    try:
        text = _corpus_text(name)
    except CorpusNotFound as err:
        st.warning(f"This corpus is not on this server: {err}")
        return None
    return TrainText(text, name, CORPORA[name][1])


def _from_paste() -> TrainText | None:
    text = st.text_area("Text to train on", key="tr_paste", **KEPT, height=160,
                        help="Press Ctrl+Enter (or click away) to apply.")
    return TrainText(text, "pasted text", "none")


def _from_upload(limits: TrainLimits) -> TrainText | None:
    with hidden("upload", "train"):
        up = st.file_uploader("A UTF-8 plain text file", type=["txt"], key="tr_upload")
    if up is None:
        st.info("Upload a .txt file to train on it.")
        return None
    return _upload_text(up, limits)


def _upload_text(up, limits: TrainLimits) -> TrainText:
    text = decode_text(up.getvalue(), limits)
    return TrainText(text, up.name.removesuffix(".txt") or "upload", "none")


def text_from_state(limits: TrainLimits) -> TrainText | None:
    """The text as the widgets hold it now, drawing nothing: in a button's callback, what was typed
    or picked just before the click (not what the previous run drew). None when there is none.
    Raises TrainRefused (undecodable upload) or CorpusNotFound."""
    state = st.session_state
    source = state.get("tr_source", SOURCES[0])
    if source == SOURCES[1]:
        return TrainText(state.get("tr_paste", ""), "pasted text", "none")
    if source == SOURCES[2]:
        up = state.get("tr_upload")
        return None if up is None else _upload_text(up, limits)
    name = state.get("tr_corpus", next(iter(CORPORA)))
    return TrainText(_corpus_text(name), name, CORPORA[name][1])


def text_input(limits: TrainLimits) -> TrainText | None:
    """The source picker and its input; shows the text's facts or a clear error. None when there is
    nothing trainable."""
    source = st.radio("Text", SOURCES, key="tr_source", **KEPT, horizontal=True)
    try:
        got = {SOURCES[0]: _from_corpus, SOURCES[1]: _from_paste,
               SOURCES[2]: lambda: _from_upload(limits)}[source]()
        if got is None:
            return None
        clean = check_text(got.text, got.preprocessing, limits)
    except TrainRefused as err:
        st.error(str(err))
        return None
    _facts(clean, got.preprocessing)
    return got


@st.cache_data(max_entries=8, show_spinner=False)
def _summary(clean: str) -> tuple[int, int, str, int, int]:
    vocab = build_vocab(clean)
    train, val = split_text(clean, 0.1)
    shown = "".join(vocab.tokens[1:41]).replace("\n", "⏎").replace("\t", "⇥")
    return len(clean), len(vocab) - 1, shown, len(train), len(val)


def _facts(clean: str, preprocessing: str) -> None:
    n, v, shown, n_train, n_val = _summary(clean)
    c1, c2, c3 = st.columns(3)
    c1.metric("Characters" + (" (after d2l cleaning)" if preprocessing == "d2l" else ""), f"{n:,}")
    c2.metric("Vocabulary", f"{v} + <unk>")
    c3.metric("Train / validation", f"{n_train:,} / {n_val:,}")
    st.caption(f"Most frequent characters: `{shown}`{' …' if v > 40 else ''} · validation = the last "
               "10 % of the text, as for the shipped models.")
