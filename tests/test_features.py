"""Per-character features, checked against their definitions on hand-made strings."""

from __future__ import annotations

import time

import pytest
import torch

from rnnviz import features as F


def vals(name: str, text: str) -> list[float]:
    out = F.feature(name, text)
    assert out.dtype == torch.float32 and out.shape == (len(text),)
    return out.tolist()


def test_every_feature_has_shape_and_kind():
    text = 'Def f(x):\n    return "a[1]" + \'b\'  # 42!\n'
    for name, v in F.features(text).items():
        assert v.shape == (len(text),) and v.dtype == torch.float32
        assert F.feature_kind(name) in ("binary", "count")
        if F.feature_kind(name) == "binary":
            assert set(v.tolist()) <= {0.0, 1.0}
        assert (v >= 0).all()
    assert F.features("", ["vowel"])["vowel"].shape == (0,)


def test_quotes_opening_inside_closing_outside():
    assert vals("in_quotes", 'a"bc"d') == [0, 1, 1, 1, 0, 0]
    assert vals("in_quotes", "x\u201cy\nz\u201dw") == [0, 1, 1, 1, 1, 0, 0]   # curly pairs span lines
    assert vals("in_quotes", 'a"b\nc"d"') == [0, 1, 1, 0, 0, 1, 1, 0]       # "…" ends at a newline
    assert vals("in_quotes", '""x') == [1, 0, 0]                              # an empty string
    doc = '"""a\n"b"""c'
    assert vals("in_quotes", doc) == [1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert vals("in_single_quotes", "'ab\ncd'e") == [1, 1, 1, 0, 0, 0, 1, 1]


def test_bracket_and_paren_depth():
    assert vals("bracket_depth", "a([b]{c})d") == [0, 1, 2, 2, 1, 2, 2, 1, 0, 0]
    assert vals("paren_depth", "a([b]{c})d") == [0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert vals("bracket_depth", "))(") == [0, 0, 1]                 # never below zero


def test_word_and_line_positions():
    assert vals("position_in_word", "ab c_d,e") == [1, 2, 0, 1, 2, 3, 0, 1]
    assert vals("start_of_word", "ab c_d,e") == [1, 0, 0, 1, 0, 0, 0, 1]
    assert vals("position_in_line", "ab\ncd") == [0, 1, 2, 0, 1]


def test_character_classes():
    assert vals("vowel", "tAxiy") == [0, 1, 0, 1, 0]
    assert vals("whitespace", "a b\n\t") == [0, 1, 0, 1, 1]
    assert vals("uppercase", "aB1") == [0, 1, 0]
    assert vals("digit", "a1\u0663") == [0, 1, 1]
    assert vals("punctuation", "a,.\u2014+") == [0, 1, 1, 1, 1]


def test_indentation_rises_then_holds():
    text = "def f():\n    x\n\ty\nz"
    got = vals("indentation", text)
    assert got[:9] == [0] * 9                       # "def f():\n"
    assert got[9:15] == [1, 2, 3, 4, 4, 4]          # "    x\n"
    assert got[15:18] == [4, 4, 4]                  # "\ty\n"
    assert got[18:] == [0]


def test_regex_feature_marks_matches():
    assert F.regex_feature(r"th\w*", "the cat thus").tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert F.regex_feature("x*", "abc").tolist() == [0, 0, 0]       # zero-width matches mark nothing
    assert F.feature_values("regex:b", "abc").tolist() == [0, 1, 0]
    assert F.regex_feature("B", "abc", ignore_case=True).tolist() == [0, 1, 0]


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "", "x" * (F.MAX_PATTERN_CHARS + 1)])
def test_bad_or_long_regex_is_a_feature_error(pattern):
    with pytest.raises(F.FeatureError):
        F.regex_feature(pattern, "abc")


def test_regex_text_cap():
    with pytest.raises(F.FeatureError, match="at most"):
        F.regex_feature("a", "a" * (F.MAX_REGEX_TEXT_CHARS + 1))


def test_catastrophic_backtracking_is_stopped():
    t0 = time.perf_counter()
    with pytest.raises(F.FeatureError, match="longer than"):
        F.regex_feature(r"(a+)+b", "a" * 5000 + "!", timeout_s=0.5)
    assert time.perf_counter() - t0 < 15


def test_unknown_feature():
    with pytest.raises(F.FeatureError, match="Unknown feature"):
        F.feature("nope", "abc")
