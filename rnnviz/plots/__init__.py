"""Figure builders: plain data in, Plotly figure out. No Streamlit here, so every figure is testable."""
