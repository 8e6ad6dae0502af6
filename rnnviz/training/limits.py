"""Hard caps of a training run started from the page, and the checks of its text and model size.

Every check raises :class:`TrainRefused` with a message meant for the person who pressed Train.
The caps are a :class:`TrainLimits` the caller builds: text and model size default to the
constants below; the app sets the wall time from its RNNVIZ_TRAIN_MAX_SECONDS setting.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from ..cells import spec
from ..vocab import preprocess

#: Fewest characters a text may have (the validation split alone needs a few hundred to mean much).
MIN_TEXT_CHARS = 200
#: Most characters of text a page run trains on.
MAX_TRAIN_CHARS = 2_000_000
#: Most parameters of a model a page run trains.
MAX_TRAIN_PARAMS = 4_000_000
#: Default wall-clock cap of one page run, in seconds.
MAX_TRAIN_SECONDS = 600.0
#: Most distinct symbols a page run trains on: every step holds several B·T·|V| tensors, so a text
#: of 99,000 distinct (say private-use) characters would need gigabytes per step.
MAX_TRAIN_VOCAB = 5_000
#: Most bytes of activations one training step may hold (forward and backward together).
MAX_STEP_BYTES = 512 * 2**20
#: Shortest sequence length the memory fit shrinks to (below it the run is refused).
MIN_FIT_STEPS = 8


class TrainRefused(ValueError):
    """A training request that breaks a cap or whose text cannot be trained on."""


@dataclass(frozen=True)
class TrainLimits:
    """Hard caps of one run: characters of text, model parameters, seconds of wall clock."""

    max_chars: int = MAX_TRAIN_CHARS
    max_params: int = MAX_TRAIN_PARAMS
    max_seconds: float = MAX_TRAIN_SECONDS


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,.0f} bytes"


def decode_text(data: bytes, limits: TrainLimits) -> str:
    """The UTF-8 text of an uploaded file; refuses files over the cap (before decoding) and
    anything that is not UTF-8 text."""
    if len(data) > 4 * limits.max_chars:
        raise TrainRefused(f"The file is {_mb(len(data))}; training texts are capped at "
                           f"{limits.max_chars:,} characters. Upload a shorter text.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TrainRefused(f"The file is not UTF-8 text (invalid byte at offset {err.start}). "
                           "Save it as UTF-8 plain text (.txt) and upload it again.") from None
    return text.removeprefix("\ufeff")


def _binary_fraction(text: str) -> float:
    """Fraction of control / unassigned characters (tab, newline, CR, form feed allowed)."""
    sample = text[:100_000]
    bad = sum(1 for ch in sample if ch not in "\t\n\r\f" and unicodedata.category(ch) in ("Cc", "Cn", "Cs"))
    return bad / max(len(sample), 1)


def check_text(text: str, preprocessing: str, limits: TrainLimits) -> str:
    """The text after ``preprocessing``; refuses an empty, too short, single-symbol, binary-looking
    or over-cap text (TrainRefused). The last few accepted texts are remembered: the Train page
    checks its text on every run (each poll of a training) and again when it fits the settings,
    and over the shipped corpus (179,000 characters, a Python loop per character) that was 9 % of
    the script runs' GIL time in the soak (py-spy). A refusal is not remembered."""
    if len(text) > limits.max_chars:
        raise TrainRefused(f"The text has {len(text):,} characters; training texts are capped at "
                           f"{limits.max_chars:,}. Use a shorter text.")
    return _checked(text, preprocessing, limits)


@lru_cache(maxsize=4)                       # ≤ 4 texts of ≤ max_chars and their cleaned copies
def _checked(text: str, preprocessing: str, limits: TrainLimits) -> str:
    if not text.strip():
        raise TrainRefused("The text is empty. Paste a text, upload a .txt file or pick a corpus.")
    if "\x00" in text or _binary_fraction(text) > 0.01:
        raise TrainRefused("This looks like binary data, not text (it holds NUL or other control "
                           "characters). Train on plain UTF-8 text.")
    clean = preprocess(text, preprocessing)
    symbols = len(set(clean))
    if symbols > MAX_TRAIN_VOCAB:
        raise TrainRefused(f"The text uses {symbols:,} different characters; page runs train on at most "
                           f"{MAX_TRAIN_VOCAB:,} (every step holds tensors of batch × length × "
                           "characters, gigabytes for a vocabulary this large). Use a text with fewer "
                           "distinct characters.")
    if symbols < 2:
        raise TrainRefused("The text uses a single character; a language model needs at least two "
                           "different characters to learn anything.")
    if len(clean) < MIN_TEXT_CHARS:
        raise TrainRefused(f"The text has {len(clean):,} characters; give at least {MIN_TEXT_CHARS} "
                           "(the last 10 % are held out for validation).")
    return clean


def count_parameters(cell: str, hidden: int, layers: int, vocab_size: int) -> int:
    """Parameters of a CharRNN: per layer gates·H·(in + H + 2), plus the H×V head and its bias."""
    g = len(spec(cell).gates)
    total = 0
    for layer in range(layers):
        n_in = vocab_size if layer == 0 else hidden
        total += g * hidden * (n_in + hidden + 2)
    return total + hidden * vocab_size + vocab_size


def check_model_size(cell: str, hidden: int, layers: int, vocab_size: int, limits: TrainLimits) -> int:
    """The parameter count; refuses a model above ``limits.max_params``."""
    n = count_parameters(cell, hidden, layers, vocab_size)
    if n > limits.max_params:
        raise TrainRefused(f"A {layers}×{hidden} {cell} over {vocab_size} symbols has {n:,} parameters; "
                           f"this server caps models at {limits.max_params:,}. Use a smaller hidden "
                           "size or one layer.")
    return n


def step_bytes(cell: str, hidden: int, layers: int, vocab_size: int, batch: int, steps: int) -> float:
    """Estimated peak bytes of one training step (float32), per position of the B·T batch: the
    one-hot input (built as int64, then float: 12·|V|), logits, log-softmax and their gradients
    (16·|V|), and per layer the gates and states kept for the backward pass and their gradients
    (2·(gates + 4)·h floats)."""
    g = len(spec(cell).gates)
    per_position = 28.0 * vocab_size + 8.0 * layers * (g + 4) * hidden
    return batch * steps * per_position


def fit_memory(cell: str, hidden: int, layers: int, vocab_size: int, batch: int, steps: int,
               max_bytes: float = MAX_STEP_BYTES) -> tuple[int, int, str | None]:
    """(batch, steps, note): the batch size halved first, then the sequence length (not below
    MIN_FIT_STEPS), until one step's activations fit ``max_bytes``; the note says what shrank.
    Raises TrainRefused when even batch 1 × MIN_FIT_STEPS does not fit."""
    b, t = batch, steps
    while step_bytes(cell, hidden, layers, vocab_size, b, t) > max_bytes and b > 1:
        b = max(1, b // 2)
    while step_bytes(cell, hidden, layers, vocab_size, b, t) > max_bytes and t > MIN_FIT_STEPS:
        t = max(MIN_FIT_STEPS, t // 2)
    need = step_bytes(cell, hidden, layers, vocab_size, b, t)
    if need > max_bytes:
        raise TrainRefused(f"One training step of this {layers}×{hidden} {cell} over {vocab_size:,} "
                           f"symbols would need {_mb(need)} even at batch 1 × length {t}; this server "
                           f"allows {_mb(max_bytes)} per run. Use a smaller model or text vocabulary.")
    if (b, t) == (batch, steps):
        return b, t, None
    shrunk = [f"batch size {batch} → {b}"] * (b != batch) + [f"sequence length {steps} → {t}"] * (t != steps)
    full = step_bytes(cell, hidden, layers, vocab_size, batch, steps)
    return b, t, (f"Reduced {' and '.join(shrunk)}: one training step would need {_mb(full)}, over "
                  f"this server's {_mb(max_bytes)} per run (~{_mb(need)} now).")
