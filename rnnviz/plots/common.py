"""Shared pieces of every figure: visible character labels, the diverging scale, layout defaults."""

from __future__ import annotations

import html
import textwrap

#: Symbols that make invisible characters visible on axes and in coloured text.
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}

#: One meaning per colour scale across the app (issue 16, item 8).
#: Diverging scale centred on 0 (blue negative, white zero, red positive): states, terms.
DIVERGING = "RdBu_r"
#: Sequential scale for probabilities, gate openings and magnitudes: dark = small / unlikely,
#: yellow = large / likely. Yellow never means "surprising".
SEQUENTIAL = "Viridis"
#: Probabilities (Predictions, Generate, Lesson): the sequential scale, yellow = likely.
PROBABILITY = SEQUENTIAL
#: Surprisal −log P: white = expected, dark red = surprising (its own scale, so it never reads as
#: the probability scale with the opposite meaning).
SURPRISAL = "Reds"


def log_axis(span: float | None = None, **extra) -> dict:
    """The one tick style of every log axis: powers of ten (10⁻³, never 1m / 1µ / 1n), a tick per
    decade; over more than 12 decades (``span``: log₁₀ max − log₁₀ min of the data) a tick every
    ceil(span / 10) decades. ``extra`` (title, range …) is merged in:
    ``fig.update_yaxes(**log_axis(title="norm"))``."""
    step = 1 if span is None or span <= 12 else int(-(-span // 10))
    return dict(type="log", exponentformat="power", dtick=step, **extra)


def display_char(ch: str) -> str:
    """A visible label for a character: space → ␣, newline → ⏎, control chars → U+XXXX, lone surrogate → U+FFFD."""
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    if len(ch) == 1 and (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
        return f"U+{ord(ch):04X}"
    if len(ch) == 1 and 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate: JSON (Plotly) refuses it
        return "\ufffd"
    if ch == "<unk>":
        return "⟨unk⟩"
    return ch


def step_labels(chars: list[str]) -> list[str]:
    """Unique x-axis labels, one per step, so repeated characters stay separate columns.

    Plotly merges equal category labels; a zero-width-free suffix of the step index keeps them
    apart: ``"t␣3"`` style is avoided in favour of ``"3:t"`` (index first, readable when rotated).
    """
    return [f"{t}:{display_char(c)}" for t, c in enumerate(chars)]


def escape(text: str) -> str:
    """HTML-escape user text for any place that renders HTML (hover labels, coloured text)."""
    return html.escape(text, quote=True)


def wrap_title(title: str, width: int) -> str:
    """Wrap a Plotly title so no line is longer than ``width`` characters: each ``<br>``-separated
    line breaks at spaces; a whole-line ``<sup>…</sup>`` subtitle (drawn at ~70 % size) gets
    ``width / 0.7``; ``a = b`` is never split. Plotly never wraps a title itself: a long one is cut
    at the chart's edge."""
    lines = []
    for line in title.split("<br>"):
        sup = line.startswith("<sup>") and line.endswith("</sup>")
        body = line[len("<sup>"):-len("</sup>")] if sup else line
        body = body.replace(" = ", "\u00a0=\u00a0")      # "s = 10" stays on one line
        parts = textwrap.wrap(body, int(width / 0.7) if sup else width, break_long_words=False,
                              break_on_hyphens=False) or [body]
        parts = [p.replace("\u00a0=\u00a0", " = ") for p in parts]
        lines += [f"<sup>{p}</sup>" for p in parts] if sup else parts
    return "<br>".join(lines)
