"""Every heavy call names its operation, and the unit orders are priced (issue 27, findings 2, 6).

- run_heavy / cached_heavy take the operation's name first (required, checked against
  cost.OPERATIONS), and every call site in app_pages passes a literal known name: no heavy call
  takes a default deadline (the unit index gets its own, ten budgets).
- Hidden states' unit order ('pattern': an h³ eigendecomposition) is priced before it runs, runs
  in the heavy-work pool under its own deadline, and above budget falls back to the trained order
  with a note.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz.serving import cost

from .conftest import REPO, tiny_model

HEAVY = {"run_heavy", "cached_heavy"}


def _heavy_calls():
    for path in sorted((REPO / "app_pages").rglob("*.py")):
        if path.name == "work.py":                      # where they are defined (op passed through)
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in HEAVY:
                    yield path.relative_to(REPO), node


def test_every_heavy_call_names_a_known_operation():
    calls = list(_heavy_calls())
    assert len(calls) >= 10
    for path, node in calls:
        first = node.args[0] if node.args else None
        assert isinstance(first, ast.Constant) and first.value in cost.OPERATIONS, \
            f"{path}:{node.lineno} calls {ast.unparse(node.func)} without a known operation name first"


def test_run_heavy_refuses_a_call_without_its_operation():
    from app_pages.ui.work import run_heavy
    with pytest.raises(TypeError):
        run_heavy(sum, [1, 2])


def test_unit_index_gets_its_own_deadline():
    assert cost.deadline_seconds("index") > cost.deadline_seconds("trace")


def test_pattern_order_is_priced_by_h_cubed():
    small, big = cost.order_seconds("pattern", 500, 256), cost.order_seconds("pattern", 500, 4096)
    assert big > 4000 * small / 16 and cost.order_seconds("trained", 500, 4096) < 0.1
    with pytest.raises(cost.CostError, match="budget"):
        cost.check_order("pattern", 5000, 4096, limit=2.0)


def test_hidden_states_falls_back_to_trained_order_with_a_note(tmp_path, monkeypatch):
    rnnviz.save_checkpoint(tiny_model("lstm", 1, 1024), tmp_path / "wide-lstm.safetensors")
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("RNNVIZ_REQUEST_SECONDS", "1")        # 1024³ eigh ≈ 3 s: over budget
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.query_params.update({"ckpt": "wide-lstm", "text": "the time machine", "hs.order": "pattern"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [m.value for m in at.info]
    assert any("Units shown as trained instead" in n and "budget" in n for n in notes), notes


def test_pca_is_priced_and_skips_overflowed_steps():
    import torch

    from rnnviz.units.projection import pca
    with pytest.raises(cost.CostError, match="PCA"):
        cost.check_pca(5000, 64 * 4096, limit=2.0)
    cost.check_pca(500, 64, limit=2.0)
    states = torch.randn(20, 6)
    states[12:] = float("inf")
    proj = pca(states)
    assert proj.coords.shape == (20, 2) and torch.isfinite(proj.coords[:12]).all()
    assert torch.isnan(proj.coords[12:]).all() and torch.isfinite(proj.explained).all()
