"""Streamlit views of rnnviz (one file per view) and the thin shared layer they use."""
