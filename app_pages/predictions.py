"""Placeholder view (being built)."""

import streamlit as st

from app_pages import shared

ctx = shared.context()
st.title("predictions")
if shared.notices(ctx):
    st.write(ctx.trace.summary())
