"""Small link items of issue 27 (finding 12), on the parsers themselves (no app run).

- Only ASCII digits are numbers: full-width `５`, Arabic-Indic `١٢` and Python's `1_0` are refused
  (Python's int()/float() and the regex `\\d` accept all three).
- One length cap per key: a Compare link naming three uploads (71 characters) is read, since the
  key's own rule allows 100 characters a name.
- The time-budget message is a sentence (ends with a full stop) wherever it is shown.
"""

from __future__ import annotations

import pytest

from app_pages.ui.params import PARAMS
from app_pages.ui.url import Float, Int, Invalid, Multi, from_link
from rnnviz.serving.deadline import Overtime

INT = Int("x", "x", 5, lo=0, hi=100)
FLOAT = Float("t", "t", 1.0, lo=0.0, hi=100.0)


@pytest.mark.parametrize("raw", ["５", "١٢", "1_0", "１２", "٣.٥", "1_0.5", "۵", "1 0"])
@pytest.mark.parametrize("param", [INT, FLOAT], ids=["int", "float"])
def test_non_ascii_digits_and_underscores_are_not_numbers(param, raw):
    with pytest.raises(Invalid):
        param.parse(raw, {})
    found, _value, complaint = from_link(param, [raw], {})
    assert not found and complaint


@pytest.mark.parametrize("raw,value", [("12", 12), ("+7", 7), ("3.0", 3), ("0", 0)])
def test_ascii_integers_still_read(raw, value):
    assert INT.parse(raw, {}) == value


@pytest.mark.parametrize("raw,value", [("1.5", 1.5), ("2", 2.0), (".5", 0.5), ("1e1", 10.0), ("-0", 0.0)])
def test_ascii_floats_still_read(raw, value):
    assert FLOAT.parse(raw, {}) == value


def test_three_upload_names_in_a_compare_link_are_read():
    param = PARAMS["cmp.models"]
    assert isinstance(param, Multi)
    names = ["upload-" + "a" * 14 + f"-{i:02d}" + "b" * 3 for i in range(3)]
    raw = ",".join(names)
    assert len(raw) > 64
    found, value, complaint = from_link(param, [raw], {"available": names, "default": names[:1]})
    assert found and value == names and complaint is None


def test_every_key_has_one_length_cap():
    """The cap from_link applies before parsing is the one the key's parser itself allows."""
    for p in PARAMS.values():
        if isinstance(p, Multi):
            assert p.max_raw() == 100 * p.max_items


def test_overtime_message_is_a_sentence():
    assert str(Overtime(8.0)).endswith(".")
