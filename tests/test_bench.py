"""Smoke test of the gradient benchmark (no timing assertions: speed is reported by
``python -m tools.bench_gradients``, not asserted here). It must run, time every row it promises
and leave the environment as it found it."""

from __future__ import annotations

import math
import os

from rnnviz import kernels
from tools.bench_gradients import bench_gradients


def test_norm_curve_rows_run_and_restore_the_kernel_switch(monkeypatch):
    monkeypatch.delenv("RNNVIZ_KERNELS", raising=False)
    rows = bench_gradients(quick=True, groups=("curve",))
    names = [r["name"] for r in rows]
    for cell in ("rnn_tanh", "gru", "lstm"):
        assert sum(cell in n and "vs fused forward" in n for n in names) == 2
        assert any(cell in n and "compiled loop vs torch loop" in n for n in names)
    for r in rows:
        assert r["ours_s"] > 0 and r["reference_s"] > 0 and math.isfinite(r["ratio"])
    assert "RNNVIZ_KERNELS" not in os.environ and kernels.enabled()
