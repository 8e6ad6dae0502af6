"""The compiled backward (rnnviz.kernels) against per-step autograd and the textbook equations:
split over threads, in chunks with truncation cuts, and stopped by its deadline between chunks."""

from __future__ import annotations

import pytest
import torch

from rnnviz import CELLS, kernels
from rnnviz.cells import spec
from rnnviz.gradients import WhatIf, norm_curve
from tests.conftest import tiny_model
from tests.grad_reference import F64, TEXT, cell_reference, textbook_grads



#: Cells with a compiled backward kernel (every cell).
KERNEL_CELLS = [c for c in CELLS if spec(c).jacobian.has_kernel]


@pytest.mark.parametrize("cell", KERNEL_CELLS)
def test_compiled_backward_split_over_threads_matches_autograd(cell, monkeypatch):
    """The compiled loop splits each step's product by rows over torch's thread count; an odd
    hidden size (7 units over 2 threads: blocks of 3 and 4) must give the per-step autograd numbers,
    and the compiled kernel must really be the one that ran."""
    calls = []
    for name in ("rnn_backward", "gru_backward", "lstm_backward", "gru_d2l_backward"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _real=real, _n=name: (calls.append((_n, a[-1])), _real(*a)))
    model = tiny_model(cell, 2, hidden=7)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        nc = norm_curve(model, TEXT, loss="sum", dtype=F64, keep_grads=True)
    finally:
        torch.set_num_threads(old)
    kind = cell if cell in ("lstm", "gru", "gru_d2l") else "rnn"
    assert calls == [(f"{kind}_backward", 2)] * 2            # both layers, two threads each
    ref = cell_reference(model, TEXT, nc.loss_steps)
    for l in range(2):
        torch.testing.assert_close(nc.grads_h[l], ref[l][: nc.loss_step + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", KERNEL_CELLS)
@pytest.mark.parametrize("truncate", [None, 3])
def test_compiled_backward_in_chunks_matches_autograd(cell, truncate, monkeypatch):
    """The compiled backward runs in chunks of steps with a deadline check between them
    (kernels.CHUNK_MACS); chunks of a step or two (the LSTM's carried dC_{t+1} ⊙ F_{t+1} crossing
    every boundary, truncation cuts falling inside and on them) give the per-step autograd numbers."""
    model = tiny_model(cell, 2, hidden=7)
    G = {"lstm": 4, "gru": 3, "gru_d2l": 3}.get(cell, 1)
    monkeypatch.setattr(kernels, "CHUNK_MACS", 2 * G * 7 * 7)          # two steps per call
    nc = norm_curve(model, TEXT, loss="sum", dtype=F64, keep_grads=True, whatif=WhatIf(truncate=truncate))
    last = nc.loss_step
    cuts = {t for t in range(last, 0, -1) if truncate and (last - t + 1) % truncate == 0}
    gh, _ = textbook_grads(model, TEXT, nc.loss_steps, cuts)
    for l in range(2):
        torch.testing.assert_close(nc.grads_h[l], gh[l][: last + 1], rtol=1e-9, atol=1e-11)


def test_a_compiled_backward_past_its_deadline_is_stopped(monkeypatch):
    """Compiled code cannot see the deadline: it is checked between chunks, so a backward pass that
    runs past it stops with Overtime instead of running on."""
    from rnnviz.serving.deadline import Overtime, deadline
    monkeypatch.setattr(kernels, "CHUNK_MACS", 1)                       # one step per call
    model = tiny_model("lstm", 1, hidden=7)
    norm_curve(model, TEXT, loss="sum", dtype=F64)                      # compiled and loaded
    with pytest.raises(Overtime) as stopped, deadline(-1.0):
        norm_curve(model, TEXT, loss="sum", dtype=F64)
    assert any(entry.path.name == "kernels.py" for entry in stopped.traceback)    # stopped in there
