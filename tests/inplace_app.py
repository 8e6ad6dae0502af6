"""A tiny app for tests/test_inplace_chart.py: charts shown with plotly_chart_inplace whose data
change each time the button is pressed (``layout.meta.n`` counts the updates), and the same figures
through st.plotly_chart(theme=None) for comparison (``?ref=1``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from app_pages.ui.plotly_component import install_plotly_js, plotly_chart_inplace  # noqa: E402

install_plotly_js(Path(__file__).parent)   # tests/static/, as app.py does for the app's folder

st.session_state.setdefault("n", 0)
if st.button("next", key="next"):
    st.session_state.n += 1
n = st.session_state.n
ys = [((i * (n + 3)) % 11) - 5 for i in range(40)]
line = go.Figure([go.Scatter(y=ys, mode="lines+markers", name=f"update {n}"),
                  go.Scatter(y=[-y for y in ys], mode="lines", name="mirror")],
                 layout=dict(title=f"update {n}", meta={"n": n, "chart": "line"}, height=340))
heat = go.Figure(go.Heatmap(z=[[(i * j + n) % 7 for i in range(30)] for j in range(8)]),
                 layout=dict(meta={"n": n, "chart": "heat"}, height=260, margin=dict(t=20)))
config = {"displaylogo": False, "displayModeBar": True}
plotly_chart_inplace(line, key="line", config=config)
plotly_chart_inplace(heat, key="heat", config=config)
st.write(f"n = {n}")
if st.query_params.get("ref"):
    st.plotly_chart(line, key="line-ref", config=config, theme=None)
    st.plotly_chart(heat, key="heat-ref", config=config, theme=None)
