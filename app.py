"""rnnviz — Streamlit front end. A router: the sidebar is shared, each view lives in app_pages/."""

import os
from pathlib import Path

import streamlit as st
import torch

from app_pages.ui.sidebar import sidebar
from app_pages.ui.startup import (
    freeze_startup_objects, serve_plotly_js, start_warmup)
from app_pages.ui.trained import leave_training

# One intra-op thread: the app's work is many tiny sequential matmuls (one per character), and on a
# small shared machine a second spinning thread makes a trace up to 10× slower, never faster.
torch.set_num_threads(int(os.environ.get("RNNVIZ_TORCH_THREADS", "1")))

st.set_page_config(page_title="rnnviz", page_icon="🔁", layout="wide")
freeze_startup_objects()
start_warmup()
serve_plotly_js(Path(__file__).parent)

PAGES = [
    st.Page("app_pages/hidden_states.py", title="Hidden states", default=True),
    st.Page("app_pages/predictions.py", title="Predictions", url_path="predictions"),
    st.Page("app_pages/gradients.py", title="Gradients", url_path="gradients"),
    st.Page("app_pages/step_through.py", title="Step-through", url_path="step"),
    st.Page("app_pages/compare.py", title="Compare", url_path="compare"),
    st.Page("app_pages/units.py", title="Units", url_path="units"),
    st.Page("app_pages/lesson.py", title="Lesson §6.3", url_path="lesson"),
    st.Page("app_pages/generate.py", title="Generate", url_path="generate"),
    st.Page("app_pages/train.py", title="Train", url_path="train"),
]

page = st.navigation(PAGES)
if page.url_path != "train":
    leave_training()     # a session that shows another view lets go of its training run
sidebar(page.url_path)
page.run()
