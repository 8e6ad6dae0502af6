"""The sample the Units view measures units on, and what it does when the training corpus is not on
this machine: rank from the statistics shipped beside the checkpoint (``<name>.units.json``), offer
to fetch the corpus (sha256-pinned, :func:`rnnviz.corpora.fetch`), or another sample (the sidebar
text, the installed Python standard library)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.cache import UPLOAD_PREFIX
from app_pages.ui.context import Context
from app_pages.ui.settings import settings
from app_pages.ui.work import LIMITS, reduced, run_heavy
from rnnviz import TextError, corpora
from rnnviz.serving import cost
from rnnviz import features as F
from rnnviz import units as U
from rnnviz.checkpoint import CheckpointError, resolve_checkpoint
from rnnviz.ref import ModelRef

#: The sample choices (widget ``u_src``, URL ``units.src``) and their labels.
SOURCES = {"corpus": "training corpus (held-out part)", "typed": "the text in the sidebar",
           "own": "text I paste here", "stdlib": "the Python standard library"}
ERRORS = (U.UnitsError, F.FeatureError, TextError, *LIMITS)   # LIMITS: refused or stopped by cost


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def training_text(ref: ModelRef, _model, max_chars: int) -> tuple[str, str]:
    return U.training_sample(_model, max_chars, corpora_dir=settings().corpora_dir)


@st.cache_data(max_entries=4, ttl=3600, show_spinner=False)
def stdlib_text(max_chars: int) -> tuple[str, str]:
    """The tail of the Python-source corpus built from this interpreter's standard library."""
    text, source = U.corpus_sample(corpora.PYTHON_CORPUS, max_chars)
    return text, source


@st.cache_resource(max_entries=16, show_spinner=False)
def shipped_stats(ref: ModelRef, model_key: str, _model) -> U.UnitStats | None:
    """The statistics shipped beside a shipped checkpoint (None for uploads, or when absent or
    made from other weights)."""
    if model_key.startswith(UPLOAD_PREFIX):
        return None
    try:
        return U.load_stats(_model, resolve_checkpoint(model_key, settings().checkpoint_dir))
    except CheckpointError:
        return None


def _use(source: str) -> None:
    st.session_state["u_src"] = source


def _offer_other_samples(key: str) -> None:
    """Buttons switching the sample to the sidebar text or the Python standard library."""
    c1, c2, _ = st.columns([1, 1, 2])
    c1.button("Use the sidebar text", key=f"u_use_typed_{key}", on_click=_use, args=("typed",))
    c2.button("Use the Python standard library", key=f"u_use_stdlib_{key}", on_click=_use,
              args=("stdlib",))


def missing_corpus(err: U.CorpusMissing, stats: U.UnitStats | None, key: str) -> None:
    """One line on the missing corpus, then: fetch it (when registered), or use another sample."""
    shown = "the rankings below come from the statistics shipped with the checkpoint" if stats \
        else "pick another sample"
    st.info(f"The training corpus {err.name!r} is not available on this machine; {shown}.")
    if err.name in corpora.DATA_HUB:
        url = corpora.DATA_HUB[err.name][0]
        if st.button(f"Fetch the corpus ({err.name}, sha256-checked, from {url.split('/')[2]})",
                     key=f"u_fetch_{key}"):
            try:
                with st.spinner(f"Downloading {err.name}…"):
                    corpora.fetch(err.name, folder=settings().corpora_dir)
            except corpora.FetchError as fail:
                st.warning(f"{fail} Use the sidebar text or the Python standard library instead.")
            else:
                training_text.clear()
                st.rerun()
    _offer_other_samples(key)


def sample_index(ctx: Context, src: str, n: int, own: str,
                 stats_ok: bool = False, key: str = "") -> U.UnitIndex | U.UnitStats | None:
    """The index of the chosen sample (built on first use), or, when ``stats_ok`` and the training
    corpus is missing, the shipped statistics; None with a message when neither is available."""
    try:
        if src == "corpus":
            with st.spinner("Loading the training corpus…"):
                text, source = training_text(ctx.ref, ctx.model, n)
        elif src == "stdlib":
            with st.spinner("Reading the Python standard library…"):
                text, source = stdlib_text(n)
        elif src == "typed":
            text, source = ctx.trace.text, "the text in the sidebar"
        else:
            text, source = own, "your pasted text"
        if len(text) < 2:
            st.info("The sample is empty: paste at least a few hundred characters (or pick another sample).")
            return None
        with st.spinner("Indexing the sample (one trace; computed once per checkpoint)…"):
            # the backend's shared, byte-bounded index cache (rnnviz.units.INDEXES), which the
            # server's start-up warm-up (start_warmup) fills for the shipped checkpoints
            plan = cost.fit("index", ctx.model.config, U.index_capacity(ctx.model, n), what="unit index",
                            request_seconds=settings().request_seconds)
            index = run_heavy("index", U.get_index, ctx.model, text, max_chars=plan.steps, source=source,
                              fingerprint=ctx.ref.digest)
    except U.CorpusMissing as err:
        stats = shipped_stats(ctx.ref, ctx.model_key, ctx.model) if stats_ok else None
        missing_corpus(err, stats, key)
        if stats is not None:
            st.caption(f"Shipped statistics: {stats.source} — N = {stats.chars:,} steps × "
                       f"U = {stats.num_units:,} units (measured when the model was trained).")
        return stats
    except ERRORS as err:
        st.info(f"{err} Pick another sample above.")
        return None
    reduced(plan)
    if not ctx.lecture:             # lecture mode: an explanation, the teacher says it
        st.caption(f"Sample: {index.source} — N = {len(index):,} steps × U = {index.num_units:,} units "
                   f"(indexed in {index.build_seconds:.1f} s).")
    return index
