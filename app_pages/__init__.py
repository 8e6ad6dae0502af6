"""Streamlit views of rnnviz (one file per view) and the thin layer they share (app_pages.ui)."""
