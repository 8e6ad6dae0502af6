"""The Gradients view's introduction names the one-step Jacobian of the cell shown (#30): each cell's
``step_jacobian`` text, with the formula it states evaluated by hand here and checked against
autograd of an independent step (nn.LSTMCell, nn.GRUCell, nn.RNNCell, the book's GRU written out)."""

from __future__ import annotations

import torch
from torch import nn

from rnnviz.cells import spec

from .conftest import app_on, open_view, tiny_model

H, D = 5, 3
g = torch.Generator().manual_seed(30)


def _rand(*shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _jac(f, h):
    return torch.autograd.functional.jacobian(f, h)


def _d(v):
    return torch.diag(v)


def test_lstm_formula_matches_autograd():
    cell = nn.LSTMCell(D, H).double()
    x, h0, c0 = _rand(1, D), _rand(1, H), _rand(1, H)
    Wi, Wf, Wc, Wo = cell.weight_hh.detach().chunk(4)    # PyTorch rows: i, f, g, o; W_h· = block.T
    pre = (x @ cell.weight_ih.T + cell.bias_ih + h0 @ cell.weight_hh.T + cell.bias_hh).detach()[0]
    i, f, c_tilde, o = torch.sigmoid(pre[:H]), torch.sigmoid(pre[H:2 * H]), torch.tanh(pre[2 * H:3 * H]), torch.sigmoid(pre[3 * H:])
    c_prev = c0[0]
    c = f * c_prev + i * c_tilde
    # the text: W_h·ᵀ of the row convention is PyTorch's block itself
    dc_dh = _d(c_prev * f * (1 - f)) @ Wf + _d(c_tilde * i * (1 - i)) @ Wi + _d(i * (1 - c_tilde ** 2)) @ Wc
    dh_dh = _d(torch.tanh(c) * o * (1 - o)) @ Wo + _d(o * (1 - torch.tanh(c) ** 2)) @ dc_dh
    dh_dc = _d(o * (1 - torch.tanh(c) ** 2) * f)
    auto_hh = _jac(lambda h: cell(x, (h[None], c0))[0][0], h0[0])
    auto_cc = _jac(lambda c_: cell(x, (h0, c_[None]))[1][0], c0[0])
    auto_hc = _jac(lambda c_: cell(x, (h0, c_[None]))[0][0], c0[0])
    auto_ch = _jac(lambda h: cell(x, (h[None], c0))[1][0], h0[0])
    torch.testing.assert_close(dh_dh, auto_hh)
    torch.testing.assert_close(_d(f), auto_cc)
    torch.testing.assert_close(dh_dc, auto_hc)
    torch.testing.assert_close(dc_dh, auto_ch)
    text = spec("lstm").step_jacobian
    for term in ("∂C_t/∂C_{t−1} = diag(F_t)", "diag(C_{t−1} ⊙ F_t ⊙ (1−F_t)) W_hfᵀ", "diag(C̃_t ⊙ I_t ⊙ (1−I_t)) W_hiᵀ",
                 "diag(I_t ⊙ (1−C̃_t²)) W_hcᵀ", "diag(tanh(C_t) ⊙ O_t ⊙ (1−O_t)) W_hoᵀ",
                 "diag(O_t ⊙ (1−tanh²(C_t))) ∂C_t/∂H_{t−1}", "diag(O_t ⊙ (1−tanh²(C_t)) ⊙ F_t)"):
        assert term in text, term


def _gru_parts(pre_x, hh):
    """R_t, Z_t from the input and hidden parts (PyTorch row order r, z, n)."""
    r = torch.sigmoid(pre_x[:H] + hh[:H])
    z = torch.sigmoid(pre_x[H:2 * H] + hh[H:2 * H])
    return r, z


def test_pytorch_gru_formula_matches_autograd():
    cell = nn.GRUCell(D, H).double()
    x, h0 = _rand(1, D), _rand(1, H)
    Wr, Wz, Wn = cell.weight_hh.detach().chunk(3)
    pre_x = (x @ cell.weight_ih.T + cell.bias_ih).detach()[0]
    hh = (h0 @ cell.weight_hh.T + cell.bias_hh).detach()[0]
    r, z = _gru_parts(pre_x, hh)
    hn = hh[2 * H:]                                     # H_{t−1} W_hh + b_hh
    n = torch.tanh(pre_x[2 * H:] + r * hn)
    h = h0[0]
    mine = _d(z) + _d((h - n) * z * (1 - z)) @ Wz + _d((1 - z) * (1 - n ** 2)) @ (_d(r) @ Wn + _d(hn * r * (1 - r)) @ Wr)
    torch.testing.assert_close(mine, _jac(lambda v: cell(x, v[None])[0], h))
    text = spec("gru").step_jacobian
    assert "diag(Z_t) + diag((H_{t−1} − H̃_t) ⊙ Z_t ⊙ (1−Z_t)) W_hzᵀ" in text
    assert "(diag(R_t) W_hhᵀ + diag((H_{t−1} W_hh + b_hh) ⊙ R_t ⊙ (1−R_t)) W_hrᵀ)" in text


def test_book_gru_formula_matches_autograd():
    # d2l §10.2 with row vectors: pre = X W_x· + H W_h· + b_·, candidate uses (R ⊙ H) W_hh
    W = {k: _rand(H, H) for k in ("hr", "hz", "hh")}
    P = {k: _rand(H) for k in ("r", "z", "h")}                # X_t W_x· + b_·, fixed

    def step(h):
        r = torch.sigmoid(P["r"] + h @ W["hr"])
        z = torch.sigmoid(P["z"] + h @ W["hz"])
        cand = torch.tanh(P["h"] + (r * h) @ W["hh"])
        return z * h + (1 - z) * cand
    h = _rand(H)
    r, z = torch.sigmoid(P["r"] + h @ W["hr"]), torch.sigmoid(P["z"] + h @ W["hz"])
    cand = torch.tanh(P["h"] + (r * h) @ W["hh"])
    mine = (_d(z) + _d((h - cand) * z * (1 - z)) @ W["hz"].T
            + _d((1 - z) * (1 - cand ** 2)) @ W["hh"].T @ (_d(r) + _d(h * r * (1 - r)) @ W["hr"].T))
    torch.testing.assert_close(mine, _jac(step, h))
    assert "W_hhᵀ (diag(R_t) + diag(H_{t−1} ⊙ R_t ⊙ (1−R_t)) W_hrᵀ)" in spec("gru_d2l").step_jacobian


def test_vanilla_formula_matches_autograd():
    cell = nn.RNNCell(D, H).double()
    x, h0 = _rand(1, D), _rand(1, H)
    pre = (x @ cell.weight_ih.T + cell.bias_ih + h0 @ cell.weight_hh.T + cell.bias_hh).detach()[0]
    mine = _d(1 - torch.tanh(pre) ** 2) @ cell.weight_hh.detach()     # diag(φ′) W_hhᵀ, W_hh = weight_hh.T
    torch.testing.assert_close(mine, _jac(lambda v: cell(x, v[None])[0], h0[0]))
    assert "diag(φ′(X_t W_xh + H_{t−1} W_hh + b_h)) W_hhᵀ" in spec("rnn_tanh").step_jacobian


def test_gradients_intro_names_the_cell_shown(tmp_path, monkeypatch):
    import rnnviz
    rnnviz.save_checkpoint(tiny_model("lstm", 1, 8), tmp_path / "timemachine-lstm.safetensors", {"corpus": "test"})
    rnnviz.save_checkpoint(tiny_model("rnn_tanh", 1, 8), tmp_path / "timemachine-rnn.safetensors", {"corpus": "test"})
    at = open_view(app_on(tmp_path, monkeypatch), "app_pages/gradients.py", ckpt="timemachine-lstm")
    intro = "\n".join(m.value for m in at.markdown if "Backpropagation through time" in m.value)
    assert "(LSTM)" in intro and "diag(F_t)" in intro and "diag(φ′" not in intro
    at = open_view(app_on(tmp_path, monkeypatch), "app_pages/gradients.py", ckpt="timemachine-rnn")
    intro = "\n".join(m.value for m in at.markdown if "Backpropagation through time" in m.value)
    assert "diag(φ′(X_t W_xh + H_{t−1} W_hh + b_h)) W_hhᵀ" in intro and "F_t" not in intro
