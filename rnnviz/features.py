"""Per-character features of a text: what a hidden unit might be tracking.

Every feature maps a text of T characters to a float tensor of shape (T,), one value per character,
aligned with the steps of :func:`rnnviz.trace` (value ``t`` belongs to the hidden state after
reading ``text[t]``). Every built-in feature is *causal*: its value at ``t`` depends only on
``text[:t+1]``, which is all a left-to-right RNN has seen at that step.

=====================  ======  ==================================================================
name                   kind    value at character t
=====================  ======  ==================================================================
``in_quotes``          binary  1 inside a double-quoted string: from an opening ``"`` up to, not
                               including, its closing ``"``; the opening quote is inside, the
                               closing one is not. As in Python, a ``"…"`` string ends at a newline
                               (so one stray quote cannot invert the rest of a text), a triple-quoted
                               string may span lines (its 2nd quote briefly reads as the end of an
                               empty string, the 3rd reopens), and so may a curly ``“…”`` pair.
``in_single_quotes``   binary  the same for ``'``, triple ``'`` and ``‘ ’`` (apostrophes in prose
                               therefore switch it on until the next ``'`` or newline).
``bracket_depth``      count   nesting depth of ``( [ {`` after reading t: an opener counts as
                               inside, a closer as outside; unmatched closers never go below 0.
``paren_depth``        count   the same for round parentheses ``( )`` only.
``position_in_word``   count   1 for the first character of a word, 2 for the second, …; 0 outside
                               words. A word is a maximal run of ``str.isalnum()`` characters or
                               ``_`` (apostrophes split words).
``position_in_line``   count   column of t: 0 for the first character after a newline (a newline
                               itself gets the column it ends).
``start_of_word``      binary  1 on the first character of a word.
``vowel``              binary  1 for a e i o u (either case; ``y`` is not a vowel here).
``whitespace``         binary  ``str.isspace()``.
``uppercase``          binary  ``str.isupper()``.
``punctuation``        binary  ASCII ``string.punctuation`` or a Unicode punctuation category (P*).
``digit``              binary  ``str.isdigit()``.
``indentation``        count   leading-whitespace columns of the current line read so far (space
                               = 1, tab = 4): it rises over the indent, then holds until the
                               newline that ends the line (which still belongs to that line).
=====================  ======  ==================================================================

Kinds: ``binary`` features are 0/1; ``count`` features are non-negative numbers. (The unit finder
turns a count into a 0/1 label for its AUC; see :mod:`rnnviz.units`.)

User-defined features: :func:`regex_feature` marks with 1 every character covered by a match of a
regular expression (``re.finditer``, non-overlapping, zero-width matches mark nothing).

Catastrophic backtracking. Python's ``re`` cannot be interrupted from inside the process (it
holds the GIL and has no timeout), and no structural check catches every slow pattern: the
exponential ``(a+)+b`` / ``(a|aa)*b`` and the merely polynomial ``.*a.*b.*c`` (18 s on 2,000
characters, measured) are all plain Python patterns. So three guards apply:

1. the pattern is at most :data:`MAX_PATTERN_CHARS` characters (and must compile: any
   ``re.error`` becomes a :class:`FeatureError` whose message can be shown to a user as is);
2. the text it runs over is at most :data:`MAX_REGEX_TEXT_CHARS` characters;
3. the matching itself runs in a separate, isolated Python process (``python -I -S``, standard
   library ``re`` only) that is killed after :data:`REGEX_TIMEOUT_S` seconds, which raises a
   :class:`FeatureError` ("took too long"). Starting it costs about 20–50 ms. At most
   :data:`rnnviz.regex_run.REGEX_WORKERS` such processes run at once server-wide (the rest wait
   their turn), and a pattern that failed on a text is not run on it again
   (:mod:`rnnviz.regex_run`).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .regex_run import RegexFailed, run_matcher

#: Longest user regular expression accepted (characters).
MAX_PATTERN_CHARS = 200
#: Longest text a user regular expression is run over (characters).
MAX_REGEX_TEXT_CHARS = 50_000
#: Wall-clock limit for running one user pattern over one text (seconds).
REGEX_TIMEOUT_S = 2.0
#: Name prefix of a user-defined feature as reported by :func:`feature_values`.
REGEX_PREFIX = "regex:"

_VOWELS = frozenset("aeiouAEIOU")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())
_PUNCT = frozenset(string.punctuation)


class FeatureError(ValueError):
    """A feature cannot be computed (unknown name, bad or unsafe regex); the message says why."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str          #: "binary" (0/1) or "count" (non-negative)
    description: str
    fn: Callable[[str], list[float]]


# --------------------------------------------------------------------------- helpers
def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _quote_state(text: str, quote: str, opens: str, closes: str) -> list[float]:
    """Inside-a-string state, causal. Straight ``quote`` strings end at a newline unless opened by
    a triple quote (Python's rule); curly ``opens``/``closes`` pairs may span lines."""
    out: list[float] = []
    state = None          # None, "single" (straight), "triple" (straight ×3) or "curly"
    run = 0               # consecutive straight quotes just read
    for ch in text:
        if ch == quote:
            run += 1
            if state is None:
                state = "triple" if run == 3 else "single"
            elif state == "single":
                state = None          # the closing quote (or the second quote of ``""``)
            elif state == "triple" and run == 3:
                state = None
        else:
            run = 0
            if ch == opens and state is None:
                state = "curly"
            elif ch == closes and state == "curly":
                state = None
            elif ch == "\n" and state == "single":
                state = None          # an unterminated one-line string
        out.append(1.0 if state is not None else 0.0)
    return out


def _in_quotes(text: str) -> list[float]:
    return _quote_state(text, '"', "\u201c", "\u201d")


def _in_single_quotes(text: str) -> list[float]:
    return _quote_state(text, "'", "\u2018", "\u2019")


def _depth(text: str, opens: frozenset[str] | set[str], closes: frozenset[str] | set[str]) -> list[float]:
    out, depth = [], 0
    for ch in text:
        if ch in opens:
            depth += 1
        elif ch in closes:
            depth = max(0, depth - 1)
        out.append(float(depth))
    return out


def _bracket_depth(text: str) -> list[float]:
    return _depth(text, set(_OPEN), _CLOSE)


def _paren_depth(text: str) -> list[float]:
    return _depth(text, {"("}, {")"})


def _position_in_word(text: str) -> list[float]:
    out, k = [], 0
    for ch in text:
        k = k + 1 if _is_word(ch) else 0
        out.append(float(k))
    return out


def _position_in_line(text: str) -> list[float]:
    out, col = [], 0
    for ch in text:
        out.append(float(col))
        col = 0 if ch == "\n" else col + 1
    return out


def _start_of_word(text: str) -> list[float]:
    out, prev = [], False
    for ch in text:
        w = _is_word(ch)
        out.append(1.0 if w and not prev else 0.0)
        prev = w
    return out


def _indentation(text: str) -> list[float]:
    out, indent, leading = [], 0, True
    for ch in text:
        if leading and ch in " \t":
            indent += 1 if ch == " " else 4
        elif ch != "\n":
            leading = False
        out.append(float(indent))
        if ch == "\n":
            indent, leading = 0, True
    return out


def _is_punct(ch: str) -> bool:
    return ch in _PUNCT or unicodedata.category(ch).startswith("P")


def _map(pred: Callable[[str], bool]) -> Callable[[str], list[float]]:
    return lambda text: [1.0 if pred(ch) else 0.0 for ch in text]


FEATURES: dict[str, FeatureSpec] = {s.name: s for s in (
    FeatureSpec("in_quotes", "binary", 'inside a "double-quoted" string', _in_quotes),
    FeatureSpec("in_single_quotes", "binary", "inside a 'single-quoted' string",
                _in_single_quotes),
    FeatureSpec("bracket_depth", "count", "nesting depth of ( [ {", _bracket_depth),
    FeatureSpec("paren_depth", "count", "nesting depth of ( ) only", _paren_depth),
    FeatureSpec("position_in_word", "count", "1-based position inside a word (0 outside)",
                _position_in_word),
    FeatureSpec("position_in_line", "count", "column (0 = first character of a line)",
                _position_in_line),
    FeatureSpec("start_of_word", "binary", "first character of a word", _start_of_word),
    FeatureSpec("vowel", "binary", "a e i o u (either case)", _map(lambda c: c in _VOWELS)),
    FeatureSpec("whitespace", "binary", "space, newline, tab …", _map(str.isspace)),
    FeatureSpec("uppercase", "binary", "uppercase letter", _map(str.isupper)),
    FeatureSpec("punctuation", "binary", "punctuation mark", _map(_is_punct)),
    FeatureSpec("digit", "binary", "digit 0-9 (and other Unicode digits)", _map(str.isdigit)),
    FeatureSpec("indentation", "count", "leading-whitespace columns of the line so far",
                _indentation),
)}

#: Names of the built-in features, in display order.
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


def feature(name: str, text: str) -> Tensor:
    """One built-in feature of ``text`` as a float32 tensor of shape (T,) with T = len(text)."""
    spec = FEATURES.get(name)
    if spec is None:
        raise FeatureError(f"Unknown feature {name!r}; choose one of {', '.join(FEATURE_NAMES)} "
                           "or a regular expression.")
    return torch.tensor(spec.fn(text), dtype=torch.float32).reshape(len(text))


def features(text: str, names: list[str] | tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """Several built-in features at once: name → (T,) float32 (all of them when ``names`` is None)."""
    return {n: feature(n, text) for n in (FEATURE_NAMES if names is None else names)}


def feature_kind(name: str) -> str:
    """``"binary"`` or ``"count"``; user regex features are binary."""
    if name.startswith(REGEX_PREFIX):
        return "binary"
    if name not in FEATURES:
        raise FeatureError(f"Unknown feature {name!r}.")
    return FEATURES[name].kind


# --------------------------------------------------------------------------- regular expressions
def compile_pattern(pattern: str, *, ignore_case: bool = False) -> re.Pattern:
    """Check and compile a user pattern (length cap, syntax). Raises FeatureError with a message."""
    if not isinstance(pattern, str) or not pattern:
        raise FeatureError("Type a regular expression (it is empty).")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FeatureError(f"The pattern has {len(pattern)} characters; at most {MAX_PATTERN_CHARS} "
                           "are allowed.")
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except (re.error, OverflowError, RecursionError, ValueError) as err:
        raise FeatureError(f"Invalid regular expression: {err}") from None


def regex_spans(pattern: str, text: str, *, ignore_case: bool = False,
                timeout_s: float = REGEX_TIMEOUT_S) -> list[tuple[int, int]]:
    """The (start, end) spans of the non-empty, non-overlapping matches of ``pattern`` in ``text``.

    Runs ``re.finditer`` in a separate, isolated Python process killed after ``timeout_s`` seconds
    (see the module docstring). Raises FeatureError for a bad, over-long or too slow pattern, or a
    text over :data:`MAX_REGEX_TEXT_CHARS`.
    """
    rx = compile_pattern(pattern, ignore_case=ignore_case)
    if len(text) > MAX_REGEX_TEXT_CHARS:
        raise FeatureError(f"Regular-expression features run on at most {MAX_REGEX_TEXT_CHARS:,} "
                           f"characters; this text has {len(text):,}.")
    if not text:
        return []
    try:
        flat = run_matcher(rx.pattern, rx.flags, text, timeout_s)
    except RegexFailed as err:
        raise FeatureError(str(err)) from None
    return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]


def regex_feature(pattern: str, text: str, *, ignore_case: bool = False,
                  timeout_s: float = REGEX_TIMEOUT_S) -> Tensor:
    """1.0 on every character inside a match of ``pattern`` in ``text``, else 0.0; shape (T,).

    See :func:`regex_spans` for the guards. Raises FeatureError (never ``re.error``).
    """
    out = torch.zeros(len(text), dtype=torch.float32)
    for a, b in regex_spans(pattern, text, ignore_case=ignore_case, timeout_s=timeout_s):
        out[a:b] = 1.0
    return out


def feature_values(name_or_regex: str, text: str) -> Tensor:
    """A built-in feature by name, or ``"regex:<pattern>"`` for a user pattern; (T,) float32."""
    if name_or_regex.startswith(REGEX_PREFIX):
        return regex_feature(name_or_regex[len(REGEX_PREFIX):], text)
    return feature(name_or_regex, text)
