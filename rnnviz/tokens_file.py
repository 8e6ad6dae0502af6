"""Token-list files for ``python -m rnnviz.convert --tokens``: which character each input id is.

Two formats, both UTF-8:

- a JSON list of strings, e.g. ``["<unk>", " ", "e", "\\n"]`` (recommended: ``json.dump(tokens, f)``);
- one token per line, with the escapes ``\\n`` (newline), ``\\r``, ``\\t``, ``\\\\`` (backslash) and
  ``\\uXXXX``; a line holding one space is the space token; a final newline is optional, CRLF line
  ends are accepted, and an empty line is refused (write the newline token as ``\\n``).

Either way ``tokens[i]`` is the character the model gives id i, and ``tokens[0]`` is ``"<unk>"``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: Largest tokens file read (bytes).
MAX_TOKENS_BYTES = 16 * 1024 * 1024


class TokensFileError(ValueError):
    """A tokens file cannot be read; ``str(err)`` says what is wrong."""


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def _unescape(line: str, lineno: int) -> str:
    def one(m: re.Match) -> str:
        code = m.group(1)
        if code.startswith("u") and len(code) == 5:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise TokensFileError(f"tokens line {lineno}: unknown escape \\{code}; use \\n \\r \\t \\\\ or "
                              "\\uXXXX.")
    return _ESCAPE.sub(one, line)


def parse_tokens(text: str) -> list[str]:
    """Tokens from a JSON list, or from one token per line with escapes (see the module docstring)."""
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        try:
            tokens = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise TokensFileError(f"The tokens file looks like JSON but does not parse: {err}.") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TokensFileError("The tokens JSON must be a list of strings.")
    else:
        tokens = _parse_lines(text)
    if any(0xD800 <= ord(ch) <= 0xDFFF for t in tokens for ch in t):
        raise TokensFileError("A token is a lone UTF-16 surrogate, which is not a character.")
    return tokens


def _parse_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    tokens = []
    for lineno, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if line == "":
            raise TokensFileError(f"tokens line {lineno} is empty: write the newline token as \\n "
                                  "(and a space as a line holding one space).")
        tokens.append(_unescape(line, lineno))
    return tokens


def read_tokens(path: str | Path) -> list[str]:
    """Read a tokens file (UTF-8; JSON list or one escaped token per line)."""
    try:
        data = Path(path).read_bytes()
        if len(data) > MAX_TOKENS_BYTES:
            raise TokensFileError(f"{path} is over {MAX_TOKENS_BYTES // 2**20} MiB: not a token list.")
        return parse_tokens(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise TokensFileError(f"{path} is not UTF-8 text.") from None
    except OSError as err:
        raise TokensFileError(f"Cannot read tokens file {path}: {err.strerror}.") from None

