"""Named hooks on rnnviz.trace: reading changes nothing, replacing flows downstream (checked against an
independent loop over torch.nn.RNNCell / GRUCell / LSTMCell), and bad hooks are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnviz
from rnnviz.trace import HookError, hook_names
from tests.conftest import tiny_model
from tests.reference import TORCH_CELLS

#: The cells PyTorch has a one-step module for (the independent reference of the replacement test).
TORCH = list(TORCH_CELLS)
TEXT = "the time machine by h. g. wells"


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", rnnviz.CELLS)
def test_hooks_returning_none_change_nothing(cell, layers):
    model = tiny_model(cell, layers)
    fused = rnnviz.trace(model, TEXT)
    seen = []
    hooks = {name: (lambda v, t, name=name: seen.append((name, t, tuple(v.shape)))) for name in hook_names(model)}
    hooked = rnnviz.trace(model, TEXT, hooks=hooks)
    assert hooked.names() == fused.names()
    for name in fused.names():
        torch.testing.assert_close(hooked[name], fused[name], atol=1e-6, rtol=0)
    for (h1, c1), (h2, c2) in zip(hooked.final_state, fused.final_state):
        torch.testing.assert_close(h1, h2, atol=1e-6, rtol=0)
        assert (c1 is None) == (c2 is None) and (c1 is None or torch.allclose(c1, c2, atol=1e-6))
    T, H = len(TEXT), model.config.hidden_size
    assert len(seen) == T * len(hooks) and {s[2] for s in seen} == {(H,)}
    assert [t for name, t, _ in seen if name == "layer0.h"] == list(range(T))


def test_hook_names_per_cell():
    assert hook_names(tiny_model("rnn_tanh", 2)) == ["layer0.h", "layer1.h"]
    assert set(hook_names(tiny_model("gru"))) == {"layer0.h", "layer0.gates.r", "layer0.gates.z", "layer0.candidate"}
    assert set(hook_names(tiny_model("lstm"))) == {"layer0.h", "layer0.c", "layer0.gates.i", "layer0.gates.f",
                                                   "layer0.gates.o", "layer0.candidate"}


def _torch_cells(model):
    """Independent torch.nn cells with the model's weights copied in (nn.RNNCell/GRUCell/LSTMCell)."""
    cfg = model.config
    out = []
    for layer in model.layers:
        cls, kwargs = TORCH_CELLS[cfg.cell]
        cell = cls(layer.weight_ih_l0.shape[1], cfg.hidden_size, **kwargs)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(layer, name + "_l0"))
        out.append(cell)
    return out


def _manual_run(model, text, unit):
    """Per-step loop over torch cells, H_t[unit] of layer 0 := 0 after every step."""
    cfg = model.config
    cells = _torch_cells(model)
    x = nn.functional.one_hot(model.vocab.encode(text).ids, cfg.vocab_size).float()
    hs = []
    for index, cell in enumerate(cells):
        h = torch.zeros(1, cfg.hidden_size)
        c = torch.zeros(1, cfg.hidden_size)
        rows = []
        for t in range(x.shape[0]):
            if cfg.cell == "lstm":
                h, c = cell(x[t:t + 1], (h, c))
            else:
                h = cell(x[t:t + 1], h)
            if index == 0:
                h = h.clone()
                h[0, unit] = 0.0
            rows.append(h[0])
        x = torch.stack(rows)
        hs.append(x)
    return hs, torch.log_softmax(model.output(x), dim=-1)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH)
def test_replacing_a_unit_matches_torch_cells(cell, layers):
    model = tiny_model(cell, layers)
    unit = 3

    def zero(v, t):
        v[unit] = 0.0
        return v

    tr = rnnviz.trace(model, TEXT, hooks={"layer0.h": zero})
    with torch.no_grad():
        hs, log_probs = _manual_run(model, TEXT, unit)
    assert torch.all(tr["layer0.h"][:, unit] == 0.0)
    for index, h in enumerate(hs):
        torch.testing.assert_close(tr[f"layer{index}.h"], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(tr.log_probs, log_probs, atol=1e-5, rtol=0)
    assert not torch.allclose(tr.log_probs, rnnviz.trace(model, TEXT).log_probs, atol=1e-4)
    torch.testing.assert_close(tr.final_state[0][0], hs[0][-1], atol=1e-5, rtol=0)


def test_replacing_a_gate_flows_into_the_rest_of_the_step():
    model = tiny_model("lstm", 1)

    def shut(v, t):                       # forget gate 0 at every step: C_t = I_t ⊙ C̃_t
        return torch.zeros_like(v)

    tr = rnnviz.trace(model, TEXT, hooks={"layer0.gates.f": shut})
    assert torch.all(tr["layer0.gates.f"] == 0)
    torch.testing.assert_close(tr["layer0.c"], tr["layer0.gates.i"] * tr["layer0.candidate"])
    torch.testing.assert_close(tr["layer0.h"], tr["layer0.gates.o"] * torch.tanh(tr["layer0.c"]))


def test_a_hook_on_an_upper_layer_leaves_the_lower_one_fused():
    model = tiny_model("gru", 2)
    fused = rnnviz.trace(model, TEXT)
    tr = rnnviz.trace(model, TEXT, hooks={"layer1.h": lambda v, t: v * 0.5})
    assert torch.equal(tr["layer0.h"], fused["layer0.h"])
    assert not torch.allclose(tr["layer1.h"], fused["layer1.h"])


def test_hooks_continue_from_an_initial_state():
    model = tiny_model("lstm", 2)
    first = rnnviz.trace(model, TEXT[:10])
    fused = rnnviz.trace(model, TEXT[10:], initial_state=first.final_state)
    hooked = rnnviz.trace(model, TEXT[10:], initial_state=first.final_state,
                          hooks={"layer0.c": lambda v, t: None, "layer1.h": lambda v, t: None})
    for name in fused.names():
        torch.testing.assert_close(hooked[name], fused[name], atol=1e-6, rtol=0)


def test_bad_hooks_are_refused():
    model = tiny_model("gru", 2)
    with pytest.raises(HookError, match=r"layer2\.h.*layer0\.gates\.r") as err:
        rnnviz.trace(model, TEXT, hooks={"layer2.h": lambda v, t: None})
    assert "layer1.candidate" in str(err.value)
    with pytest.raises(HookError, match="unknown"):
        rnnviz.trace(model, TEXT, hooks={"layer0.c": lambda v, t: None})    # a GRU has no C_t
    with pytest.raises(HookError, match="not callable"):
        rnnviz.trace(model, TEXT, hooks={"layer0.h": 3})
    with pytest.raises(HookError, match="shape"):
        rnnviz.trace(model, TEXT, hooks={"layer0.h": lambda v, t: v[:2]})
    with pytest.raises(ValueError):                                          # HookError is a ValueError
        rnnviz.trace(model, TEXT, hooks=["layer0.h"])
