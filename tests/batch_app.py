"""A tiny app for tests/test_batching.py: one caption every 50 ms for 0.6 s, each naming its run,
with the app's message batching (app_pages/ui/batching.py) at RNNVIZ_MESSAGE_BATCH_MS (0: off)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from app_pages.ui.batching import batch_script_messages  # noqa: E402

batch_script_messages()   # the window from RNNVIZ_MESSAGE_BATCH_MS, as in app.py
st.button("again", key="again")   # a click reruns the script
run = st.session_state["run"] = st.session_state.get("run", 0) + 1
for i in range(12):
    st.caption(f"run {run} caption {i}")
    time.sleep(0.05)
