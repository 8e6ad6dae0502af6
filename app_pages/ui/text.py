"""The user's text: its defaults and limits, Markdown escaping for showing it, and the notices a
view shows about it (cut, cleaned, too long for the link, untraceable)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.cache import cached_derived
from app_pages.ui.context import Context
from rnnviz.overflow import first_overflow

DEFAULT_TEXT = "the time machine by h. g. wells"
#: Longest text the page traces (characters). Longer pastes are cut, with a visible notice.
MAX_PAGE_CHARS = 5_000
#: Characters of the text kept in the URL (longer texts: the link holds the first ones).
MAX_URL_TEXT = 2_000
PRESETS = {
    "The Time Machine (title)": DEFAULT_TEXT,
    "Time traveller": "the time traveller as we shall call him for now was explaining",
    "Shakespeare": "KING:\nGood morrow, friends; what news from the northern camp?",
    "Python": "def f(x):\n    return [x * (x + 1) for x in range(10)]\n",
}

_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~:")


def md(text: str) -> str:
    """Backslash-escape markdown (and $…$ LaTeX) specials of user text shown through st.markdown,
    st.caption, st.warning… (Streamlit never renders raw HTML there; this keeps the text literal)."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def model_note(ctx: Context) -> None:
    """The line saying why the view opened on this model (PAGE_CHECKPOINTS), once per run."""
    if ctx.model_note and not ctx.lecture:        # lecture mode: an explanation, the teacher says it
        st.caption(ctx.model_note)
    ctx.model_note = ""


def notices(ctx: Context, shows_cleaned_text: bool = False) -> bool:
    """Show the text notices; return False when there is nothing to plot.

    shows_cleaned_text: this view itself shows the cleaned text (Predictions), so the notice points
    down the page instead of to another view."""
    model_note(ctx)
    if ctx.truncated_from:
        st.warning(f"The text has {ctx.truncated_from:,} characters; the page traces the first "
                   f"{MAX_PAGE_CHARS:,}.")
    if ctx.reduced:
        st.info(ctx.reduced)
    if ctx.error:
        st.info(ctx.error)
        return False
    trace = ctx.trace
    if trace is not None and (over := cached_derived("overflow", ctx.ref, trace,
                                                     lambda: first_overflow(trace.cache))) is not None:
        st.warning(over.describe())
    if trace is not None and trace.preprocessed and not ctx.lecture:
        st.caption(f"This model was trained on {ctx.model.config.preprocessing}-cleaned text, so your "
                   "text was cleaned the same way before it was read "
                   + ("(open the box below the numbers to see the cleaned text)." if shows_cleaned_text
                      else "(see Predictions for the cleaned text)."))
    if len(ctx.text) > MAX_URL_TEXT:
        st.caption(f"The page link holds the first {MAX_URL_TEXT:,} characters of the text.")
    return True
