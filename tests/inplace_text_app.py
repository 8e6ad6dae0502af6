"""A tiny app for tests/test_inplace_text.py: coloured text shown with the in-place component
(app_pages/ui/colored_text.colored_text) whose text and values change each time the button is
pressed (hostile characters, a newline, an unknown mark; longer, then shorter), and the same text
through st.html(colored_text_html) for comparison (``?ref=1``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from app_pages.ui.colored_text import colored_text  # noqa: E402
from rnnviz.plots import text as tplots  # noqa: E402

TEXTS = ['ab <img src=x onerror="window.__xss=1">\nz\t', "the time machine by h. g. wells\n" * 3, "x"]

st.session_state.setdefault("n", 0)
if st.button("next", key="next"):
    st.session_state.n += 1
n = st.session_state.n
chars = list(TEXTS[n % len(TEXTS)])
values = [None if i % 7 == 3 else ((i * (n + 3)) % 11 - 5) / 5 for i in range(len(chars))]
args = dict(vmin=-1.0, vmax=1.0, tooltips=[f"t={i} n={n} {c!r}" for i, c in enumerate(chars)],
            marked=[1, len(chars) - 1], font_size=15, caption=f"update {n} <b>not bold</b>")
colored_text(chars, values, key="text", **args)
st.write(f"n = {n}")
if st.query_params.get("ref"):
    st.html(tplots.colored_text_html(chars, values, **args))
