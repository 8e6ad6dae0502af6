"""rnnviz — Streamlit front end. A router: the sidebar is shared, each view lives in app_pages/."""

from pathlib import Path

import streamlit as st
import torch

from app_pages.ui import goto, presenter
from app_pages.ui.params import VIEWS
from app_pages.ui.settings import SettingsError, settings
from app_pages.ui.sidebar import sidebar
from app_pages.ui.startup import (
    freeze_startup_objects, serve_plotly_js, start_warmup)
from app_pages.ui.trained import keep_training

# One intra-op thread: the app's work is many tiny sequential matmuls (one per character), and on a
# small shared machine a second spinning thread makes a trace up to 10× slower, never faster.
torch.set_num_threads(1)

st.set_page_config(page_title="rnnviz", page_icon="🔁", layout="wide")
try:
    settings()           # the operator's RNNVIZ_* switches, read once; a bad one stops every page
except SettingsError as err:
    st.error(f"This server is misconfigured: {err}")
    st.stop()
freeze_startup_objects()
start_warmup()
serve_plotly_js(Path(__file__).parent)

# Every view is declared once, in app_pages/ui/params.py (VIEWS).
PAGES = [st.Page(v.page, title=v.title, default=True) if v.default else
         st.Page(v.page, title=v.title, url_path=v.url_path) for v in VIEWS]

page = st.navigation(PAGES)
presenter.bar(page.url_path)   # first: going to a slide forgets the widgets of earlier views
goto.follow(page.url_path)     # a view a click asked for (app_pages/ui/goto.py)
if page.url_path != "train":
    keep_training()      # the Train run belongs to the session: it goes on, its settings stay
sidebar(page.url_path)
presenter.panel(page.url_path)
page.run()
