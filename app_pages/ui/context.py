"""The :class:`Context` every view needs, built by the sidebar once per script run."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from rnnviz import CharRNN, Trace
from rnnviz.ref import ModelRef


@dataclass
class Context:
    """What every view needs: the chosen model, the text and its trace (None when untraceable)."""

    model_key: str
    model: CharRNN
    ref: ModelRef                   #: the model's identity (name + weights' hash): key every cache on it
    text: str
    trace: Trace | None
    error: str | None = None
    truncated_from: int | None = None
    lecture: bool = False           #: lecture mode: controls hidden, larger fonts
    font_size: int = 12             #: base font size for figures (larger in lecture mode)
    reduced: str | None = None      #: the cost model's "Reduced because …" note for the trace
    digest: str = ""                #: short hash of model_key + text (figure meta)
    model_note: str = ""            #: why the view opened on this model (a view default), or ""
    train_step: int | None = None   #: a training timeline's step shown instead of the checkpoint, or None


def context() -> Context:
    """The context built by the sidebar on this run (views call this)."""
    return st.session_state["rnnviz_ctx"]
