"""The model computes exactly the textbook equations, and PyTorch's own cells agree."""

import pytest
import torch

from rnnviz import CELLS, ModelConfig, Vocab, build_model

from .conftest import SMALL_TEXT, tiny_model
from .reference import cell_run, textbook_run

EXPECTED_NAMES = {
    "rnn_tanh": {"W_xh", "W_hh", "b_h"},
    "rnn_relu": {"W_xh", "W_hh", "b_h"},
    "gru": {"W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h", "b_hh"},
    "lstm": {"W_xi", "W_hi", "b_i", "W_xf", "W_hf", "b_f", "W_xo", "W_ho", "b_o",
             "W_xc", "W_hc", "b_c"},
    "gru_d2l": {"W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h"},
}


def test_forward_matches_textbook_and_torch_cells(any_model):
    model = any_model
    ids = model.vocab.encode(SMALL_TEXT).ids
    logits, _ = model(ids[:, None])
    book_layers, book_logits = textbook_run(model, ids)
    cell_layers, cell_logits = cell_run(model, ids)
    torch.testing.assert_close(logits[:, 0].double(), book_logits, atol=1e-5, rtol=0)
    if cell_logits is None:          # the book's GRU: PyTorch has no cell to compare with
        return
    torch.testing.assert_close(cell_logits, book_logits, atol=1e-6, rtol=0)
    for ours, book in zip(cell_layers, book_layers):
        torch.testing.assert_close(ours, book["h"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layer", [0, 1])
def test_textbook_param_names_and_shapes(cell, layer):
    model = tiny_model(cell, layers=2, hidden=6)
    V = model.config.vocab_size
    params = model.textbook_params(layer)
    assert set(params) == EXPECTED_NAMES[cell] | {"W_hq", "b_q"}
    d = V if layer == 0 else 6
    for name, tensor in params.items():
        if name.startswith("W_x"):
            assert tensor.shape == (d, 6), name
        elif name.startswith("W_h") and name != "W_hq":
            assert tensor.shape == (6, 6), name
        elif name.startswith("b_") and name != "b_q":
            assert tensor.shape == (6,), name
    assert params["W_hq"].shape == (6, V) and params["b_q"].shape == (V,)


@pytest.mark.parametrize("cell", CELLS)
def test_merged_biases_are_sums_of_torch_biases(cell):
    model = tiny_model(cell, hidden=5)
    mod = model.layers[0]
    params = model.textbook_params(0)
    H = 5
    if cell.startswith("rnn"):
        torch.testing.assert_close(params["b_h"], mod.bias_ih_l0 + mod.bias_hh_l0)
        torch.testing.assert_close(params["W_hh"], mod.weight_hh_l0.T)
    elif cell == "lstm":  # torch order i, f, g, o
        torch.testing.assert_close(params["b_f"], mod.bias_ih_l0[H:2 * H] + mod.bias_hh_l0[H:2 * H])
        torch.testing.assert_close(params["W_xc"], mod.weight_ih_l0[2 * H:3 * H].T)
    elif cell == "gru_d2l":  # one bias per gate, blocks r, z, n
        torch.testing.assert_close(params["b_z"], mod.bias_ih_l0[H:2 * H])
        torch.testing.assert_close(params["W_hh"], mod.weight_hh_l0[2 * H:].T)
        assert not hasattr(mod, "bias_hh_l0")
    else:  # torch order r, z, n; candidate biases stay separate
        torch.testing.assert_close(params["b_z"], mod.bias_ih_l0[H:2 * H] + mod.bias_hh_l0[H:2 * H])
        torch.testing.assert_close(params["b_h"], mod.bias_ih_l0[2 * H:])
        torch.testing.assert_close(params["b_hh"], mod.bias_hh_l0[2 * H:])


@pytest.mark.parametrize("cell", CELLS)
def test_set_textbook_params_round_trip_keeps_the_function(cell):
    src = tiny_model(cell, layers=2, seed=1)
    dst = tiny_model(cell, layers=2, seed=2)
    for layer in range(2):
        dst.set_textbook_params(layer, src.textbook_params(layer))
    ids = src.vocab.encode(SMALL_TEXT).ids[:, None]
    torch.testing.assert_close(dst(ids)[0], src(ids)[0], atol=1e-6, rtol=0)


def test_config_validation():
    tokens = tuple(Vocab.from_text("ab").tokens)
    with pytest.raises(ValueError, match="unknown cell"):
        ModelConfig("transformer", 8, 1, tokens)
    with pytest.raises(ValueError, match="hidden_size"):
        ModelConfig("lstm", 0, 1, tokens)
    with pytest.raises(ValueError, match="num_layers"):
        ModelConfig("lstm", 8, 99, tokens)
    with pytest.raises(ValueError, match="<unk>"):
        ModelConfig("lstm", 8, 1, ("a", "b"))
    with pytest.raises(ValueError, match="duplicate"):
        ModelConfig("lstm", 8, 1, ("<unk>", "a", "a"))
    cfg = ModelConfig("gru", 8, 2, tokens, "d2l", 0.1)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_build_model_is_seeded_and_eval():
    cfg = ModelConfig("lstm", 8, 1, tuple(Vocab.from_text("abc").tokens))
    a, b = build_model(cfg, seed=3), build_model(cfg, seed=3)
    assert not a.training
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
