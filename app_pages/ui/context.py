"""The :class:`Context` every view needs, built by the sidebar once per script run."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from rnnviz import CharRNN, Trace


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


def context() -> Context:
    """The context built by the sidebar on this run (views call this)."""
    return st.session_state["rnnviz_ctx"]
