"""Smoke test of the cost benchmark (``python -m tools.bench_cost``): on one tiny grid point every
priced operation runs and gives a row with a positive estimate and measurement. No ratio is
asserted: how close the estimates are is what the benchmark reports, on a quiet machine."""

from __future__ import annotations

import math

from tools.bench_cost import OPS, Grid, bench_cost, summary


def test_every_priced_operation_gives_a_row_on_a_tiny_point():
    grid = Grid(cells=("lstm",), hidden=(16,), vocab=(8,), steps=(20,), heavy_max_h=16, cap=5.0)
    rows, skipped = bench_cost(grid)
    assert not skipped
    assert [r["op"] for r in rows] == [op.name for op in OPS]
    for r in rows:
        assert (r["cell"], r["h"], r["V"], r["T"]) == ("lstm", 16, 8, 20)
        assert r["estimate_s"] > 0 and r["measured_s"] > 0, r
        assert math.isclose(r["ratio"], r["cpu_s"] / r["estimate_s"])      # CPU time: what deadlines count
    assert summary(rows).endswith(f"of {len(OPS)} within 3x")
