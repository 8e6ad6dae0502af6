"""Shared pieces of every figure: visible character labels, the diverging scale, layout defaults."""

from __future__ import annotations

import html

#: Symbols that make invisible characters visible on axes and in coloured text.
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}

#: Diverging colour scale centred on 0 (blue negative, white zero, red positive).
DIVERGING = "RdBu_r"
#: Sequential scale for probabilities and magnitudes.
SEQUENTIAL = "Viridis"


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
