"""Independent references for the gradient tests (none shares code with rnnviz.gradients):
per-step nn.*Cell autograd with ``retain_grad`` on each H_t, and the textbook equations stepped one
by one with zero probes on every H_t and C_t (the gradient w.r.t. a probe is the total derivative)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from rnnviz import CELLS
from tests.conftest import SMALL_TEXT
from tests.reference import textbook_run, textbook_step

F64 = torch.float64
TEXT = SMALL_TEXT[:16]
CELL_LAYERS = [(c, n) for c in CELLS for n in (1, 2)]


def ids_of(model, text):
    return model.vocab.encode(text).ids


def cell_reference(model, text, loss_steps):
    """Per-step nn.*Cell formulation (float64); returns per-layer (T, h) ∂L/∂H_t (retain_grad)."""
    m = copy.deepcopy(model).double()
    cfg = m.config
    ids = ids_of(m, text)
    T, H = ids.numel(), cfg.hidden_size
    inputs = list(nn.functional.one_hot(ids, cfg.vocab_size).double())
    hs_all = []
    for layer in m.layers:
        if cfg.cell == "gru_d2l":   # no PyTorch cell: the book's equations (tests/reference.py)
            p = {k: v.double() for k, v in m.textbook_params(len(hs_all)).items()}
            cell = lambda x, h, p=p: textbook_step("gru_d2l", p, x, h)["h"]  # noqa: E731
        elif cfg.cell.startswith("rnn"):
            cell = nn.RNNCell(layer.input_size, H, nonlinearity=cfg.cell[4:])
        elif cfg.cell == "gru":
            cell = nn.GRUCell(layer.input_size, H)
        else:
            cell = nn.LSTMCell(layer.input_size, H)
        if isinstance(cell, nn.Module):
            cell = cell.double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(layer, name + "_l0"))
        h = torch.zeros(1, H, dtype=F64, requires_grad=True)
        c = torch.zeros(1, H, dtype=F64)
        hs = []
        for t in range(T):
            if cfg.cell == "lstm":
                h, c = cell(inputs[t][None], (h, c))
            else:
                h = cell(inputs[t][None], h)
            h.retain_grad()
            hs.append(h)
        hs_all.append(hs)
        inputs = [x[0] for x in hs]
    loss = sum(-torch.log_softmax(m.output(inputs[s]), -1)[ids[s + 1]] for s in loss_steps)
    loss.backward()
    return [torch.cat([x.grad if x.grad is not None else torch.zeros(1, H, dtype=F64) for x in hs])
            for hs in hs_all]


def textbook_loss(model, ids, loss_steps, probes_h=None, probes_c=None, cuts=()):
    """The d2l equations stepped one at a time (tests/reference.py; model already float64).

    probes_h[l]: (T, h) added to H_t of layer l right after it is computed (C likewise, before
    H_t = O_t ⊙ tanh(C_t)). ``cuts``: steps t at which H_{t−1} (and C_{t−1}) are detached.
    """
    _, logits = textbook_run(model, ids, probes_h=probes_h, probes_c=probes_c, cuts=set(cuts))
    return sum(-torch.log_softmax(logits[s], -1)[ids[s + 1]] for s in loss_steps)


def textbook_grads(model, text, loss_steps, cuts=()):
    """Total derivatives ∂L/∂H_t, ∂L/∂C_t via zero probes (float64)."""
    m = copy.deepcopy(model).double()
    ids = ids_of(m, text)
    T, H, L = ids.numel(), m.config.hidden_size, m.config.num_layers
    ph = [torch.zeros(T, H, dtype=F64, requires_grad=True) for _ in range(L)]
    pc = [torch.zeros(T, H, dtype=F64, requires_grad=True) for _ in range(L)]
    loss = textbook_loss(m, ids, loss_steps, ph, pc, cuts)
    gh = torch.autograd.grad(loss, ph + pc, allow_unused=True)
    z = torch.zeros(T, H, dtype=F64)
    return [g if g is not None else z for g in gh[:L]], [g if g is not None else z for g in gh[L:]]
