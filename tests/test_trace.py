"""trace(): every named tensor against the textbook reference; pieces; summaries; bad text."""

import math

import pytest
import torch

import rnnviz
from rnnviz import TextError, trace

from .conftest import SMALL_TEXT, tiny_model
from .reference import textbook_run

GATE_NAMES = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}


def test_every_named_tensor_matches_the_textbook(any_model):
    model = any_model
    tr = trace(model, SMALL_TEXT)
    book_layers, book_logits = textbook_run(model, tr.ids)
    T, H = len(SMALL_TEXT), model.config.hidden_size
    assert tr.chars == list(SMALL_TEXT) and tr.ids.shape == (T,)
    for layer, book in enumerate(book_layers):
        assert tr[f"layer{layer}.h"].shape == (T, H)
        torch.testing.assert_close(tr[f"layer{layer}.h"].double(), book["h"], atol=1e-5, rtol=0)
        cell = model.config.cell
        for g in GATE_NAMES.get(cell, ()):
            torch.testing.assert_close(tr[f"layer{layer}.gates.{g}"].double(), book[g], atol=1e-5, rtol=0)
        if cell in GATE_NAMES:
            torch.testing.assert_close(tr[f"layer{layer}.candidate"].double(), book["candidate"],
                                       atol=1e-5, rtol=0)
        if cell == "lstm":
            torch.testing.assert_close(tr[f"layer{layer}.c"].double(), book["c"], atol=1e-5, rtol=0)
        else:
            assert f"layer{layer}.c" not in tr
    torch.testing.assert_close(tr.logits.double(), book_logits, atol=1e-5, rtol=0)


def test_probabilities_surprisal_and_summaries(any_model):
    tr = trace(any_model, SMALL_TEXT)
    T = len(SMALL_TEXT)
    torch.testing.assert_close(tr.probs.sum(-1), torch.ones(T), atol=1e-6, rtol=0)
    torch.testing.assert_close(tr.probs, torch.softmax(tr.logits, -1), atol=1e-7, rtol=0)
    expected = torch.tensor([-math.log(tr.probs[t, tr.ids[t + 1]].item()) for t in range(T - 1)])
    assert tr.surprisal.shape == (T - 1,)
    torch.testing.assert_close(tr.surprisal, expected, atol=1e-5, rtol=1e-5)
    ce = sum(expected.tolist()) / (T - 1)
    assert tr.cross_entropy == pytest.approx(ce, rel=1e-5)
    assert tr.perplexity == pytest.approx(math.exp(ce), rel=1e-5)
    assert tr.bits_per_char == pytest.approx(ce / math.log(2), rel=1e-5)
    # the same figure as PyTorch's own cross-entropy on the logits
    ref = torch.nn.functional.cross_entropy(tr.logits[:-1].double(), tr.ids[1:])
    assert tr.cross_entropy == pytest.approx(ref.item(), rel=1e-5)


def test_tracing_in_pieces_with_carried_state_equals_one_pass(any_model):
    whole = trace(any_model, SMALL_TEXT)
    cut = 17
    first = trace(any_model, SMALL_TEXT[:cut])
    second = trace(any_model, SMALL_TEXT[cut:], initial_state=first.final_state)
    for name in whole.names():
        if name == "surprisal":
            continue
        joined = torch.cat([first[name], second[name]])
        torch.testing.assert_close(joined, whole[name], atol=1e-6, rtol=0, msg=name)
    torch.testing.assert_close(second.final_state[-1][0], whole.final_state[-1][0], atol=1e-6, rtol=0)
    # the one surprisal lost at the seam is the prediction of the first char of piece two
    torch.testing.assert_close(torch.cat([first.surprisal, second.surprisal]),
                               torch.cat([whole.surprisal[:cut - 1], whole.surprisal[cut:]]),
                               atol=1e-5, rtol=0)


def test_final_state_is_last_step(any_model):
    tr = trace(any_model, SMALL_TEXT)
    for layer, (h, c) in enumerate(tr.final_state):
        torch.testing.assert_close(h, tr[f"layer{layer}.h"][-1])
        if any_model.config.cell == "lstm":
            torch.testing.assert_close(c, tr[f"layer{layer}.c"][-1], atol=1e-6, rtol=0)


def test_without_gates_gives_states_and_probs_only():
    model = tiny_model("lstm", layers=2)
    full, lite = trace(model, SMALL_TEXT), trace(model, SMALL_TEXT, gates=False)
    assert set(lite.names()) == {"layer0.h", "layer1.h", "logits", "log_probs", "probs", "surprisal"}
    for name in lite.names():
        assert torch.equal(lite[name], full[name])


def test_unknown_characters_map_to_unk_and_are_reported():
    model = tiny_model("rnn_tanh")
    text = "hé€o\x00"
    tr = trace(model, text)
    assert tr.unknown_positions == (1, 2, 4)
    assert tr.ids[1] == 0 and tr.ids[2] == 0 and tr.ids[4] == 0
    assert tr.chars == list(text)  # shown as typed, marked via unknown_positions


def test_empty_and_oversized_text_raise_text_error():
    model = tiny_model("gru")
    with pytest.raises(TextError, match="empty"):
        trace(model, "")
    with pytest.raises(TextError, match="at most"):
        trace(model, "a" * (rnnviz.MAX_TRACE_CHARS + 1))
    with pytest.raises(TextError):
        trace(model, None)


def test_single_character_has_no_surprisal_and_nan_summary():
    tr = trace(tiny_model("lstm"), "h")
    assert tr.probs.shape[0] == 1 and tr.surprisal.numel() == 0
    assert math.isnan(tr.cross_entropy) and math.isnan(tr.perplexity)


def test_model_preprocessing_is_applied():
    from rnnviz import ModelConfig, Vocab, build_model, d2l_clean
    tokens = tuple(Vocab.from_text(d2l_clean("the time machine")).tokens)
    model = build_model(ModelConfig("rnn_tanh", 4, 1, tokens, preprocessing="d2l"), seed=0)
    tr = trace(model, "The Time-Machine!")
    assert tr.text == "the time machine " and tr.preprocessed
    assert tr.original_text == "The Time-Machine!"
    raw = trace(model, "The", preprocess_text=False)
    assert raw.unknown_positions == (0,)


def test_trace_does_not_touch_parameters_or_mode():
    model = tiny_model("lstm", layers=2)
    before = [p.clone() for p in model.parameters()]
    trace(model, SMALL_TEXT)
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("T", [1, 2, 5, 16, 17, 1000])
def test_chunked_cell_scan_equals_the_plain_loop(T):
    from rnnviz.cells import linear_recurrence
    g = torch.Generator().manual_seed(T)
    f = torch.rand(T, 7, generator=g, dtype=torch.float64)
    f[T // 3] = 0.0                      # a closed forget gate must cut the memory exactly
    u = torch.randn(T, 7, generator=g, dtype=torch.float64)
    c0 = torch.randn(7, generator=g, dtype=torch.float64)
    ref, prev = [], c0
    for t in range(T):
        prev = f[t] * prev + u[t]
        ref.append(prev)
    torch.testing.assert_close(linear_recurrence(f, u, c0), torch.stack(ref), atol=1e-12, rtol=1e-12)
