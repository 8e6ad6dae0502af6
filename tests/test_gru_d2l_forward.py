"""The book's GRU layer (rnnviz.cells.gru_d2l.D2LGRU): its compiled forward loop and its torch loop
against the textbook equations stepped one by one (tests/reference.py), float32 and float64."""

from __future__ import annotations

import pytest
import torch

from rnnviz.cells.gru_d2l import _compiled, _torch_run
from tests.conftest import tiny_model
from tests.reference import textbook_step


def _book(layer_params: dict, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    h, outs = h0.double(), []
    for t in range(x.shape[0]):
        h = textbook_step("gru_d2l", layer_params, x[t].double(), h)["h"]
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [None, 3])
def test_compiled_and_torch_loops_are_the_books_equations(dtype, batch):
    model = tiny_model("gru_d2l", 2, hidden=7)
    layer = model.layers[1].to(dtype)                     # the second layer: input size = h
    p = {k: v.double() for k, v in model.textbook_params(1).items()}
    g = torch.Generator().manual_seed(0)
    shape = (12, 7) if batch is None else (12, batch, 7)
    x = torch.randn(shape, generator=g, dtype=dtype)
    h0 = torch.randn(shape[1:], generator=g, dtype=dtype)
    ref = _book(p, x, h0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    with torch.no_grad():
        out, hn = layer(x, h0[None])
        assert _compiled(x, layer.weight_hh_l0, h0)
    assert out.dtype == dtype and out.shape == shape
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=0)
    torch.testing.assert_close(hn[0], out[-1])
    out_grad, _ = layer(x, h0[None])                     # grad wanted: the torch loop
    assert out_grad.requires_grad
    torch.testing.assert_close(out_grad.detach().double(), ref, atol=tol, rtol=0)


def test_torch_loop_gradients_match_the_book_by_autograd():
    model = tiny_model("gru_d2l", 1, hidden=5).double()
    layer = model.layers[0]
    x = torch.randn(9, layer.input_size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out, _ = layer(x)
    (g_ours,) = torch.autograd.grad(out.square().sum(), layer.weight_hh_l0)
    w = layer.weight_hh_l0.detach().clone().requires_grad_(True)
    xp = x @ layer.weight_ih_l0.detach().T + layer.bias_ih_l0.detach()
    ref = _torch_run(xp, w, torch.zeros(5, dtype=torch.float64))
    (g_ref,) = torch.autograd.grad(ref.square().sum(), w)
    torch.testing.assert_close(g_ours, g_ref)


def test_extreme_weights_saturate_and_nan_propagates():
    model = tiny_model("gru_d2l", 1, hidden=4)
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight_hh_l0.mul_(1e6)
        x = torch.randn(20, layer.input_size, generator=torch.Generator().manual_seed(2)) * 1e3
        out, _ = layer(x)
        assert torch.isfinite(out).all() and out.abs().max() <= 1.0 + 1e-6
        x[5, 0] = float("nan")
        out, _ = layer(x)
    assert torch.isnan(out[5:]).any() and torch.isfinite(out[:5]).all()
