"""Vocabulary and d2l cleaning."""

import pytest

from rnnviz import UNK, Vocab, d2l_clean, preprocess

from .conftest import REPO


def test_from_text_orders_by_frequency_with_unk_first():
    v = Vocab.from_text("abbccc")
    assert v.tokens == [UNK, "c", "b", "a"]
    assert len(v) == 4 and "a" in v and "z" not in v and UNK not in v


def test_encode_never_fails_and_reports_unknowns():
    v = Vocab.from_text("abc")
    enc = v.encode("a😀b\u0301c\x00")
    assert enc.ids.tolist() == [1, 0, 2, 0, 3, 0]
    assert enc.unknown_positions == (1, 3, 5) and enc.num_unknown == 3
    assert v.encode("").ids.numel() == 0
    assert v.decode(v.encode("abc").ids) == "abc"


def test_d2l_clean_matches_the_book():
    assert d2l_clean("The Time Machine, by H. G. Wells [1898]") == "the time machine by h g wells "
    assert preprocess("A-b", "none") == "A-b"
    with pytest.raises(ValueError):
        preprocess("x", "bogus")


def test_d2l_vocabulary_of_the_time_machine_has_28_symbols():
    path = REPO.parent / "shared" / "corpora" / "timemachine.txt"
    if not path.exists():
        pytest.skip(f"corpus not present at {path}")
    v = Vocab.from_text(d2l_clean(path.read_text(encoding="utf-8")))
    assert len(v) == 28
    assert set(v.tokens[1:]) == set("abcdefghijklmnopqrstuvwxyz ")


def test_invalid_token_lists_are_refused():
    with pytest.raises(ValueError):
        Vocab(["a"])
    with pytest.raises(ValueError):
        Vocab([UNK, "ab"])
