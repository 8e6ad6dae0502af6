"""Step a model through a text and capture every activation by name (TransformerLens-style).

``trace(model, text)`` runs each layer as one fused PyTorch call (nn.RNN/GRU/LSTM) to get every
H_t, then recovers the gates from one batched matmul over all steps, since every gate at step t is a
function of X_t and H_{t-1} only. The LSTM memory cell follows from C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t.
The model's math is never changed: the trace only reads what the fused run computes.

Names captured (T = number of characters, h = hidden size, |V| = vocabulary size):

=====================  ==========  ==========================================================
name                   shape       meaning
=====================  ==========  ==========================================================
``layer{l}.h``         (T, h)      H_t of layer l after reading ``chars[t]``
``layer{l}.c``         (T, h)      LSTM memory cell C_t
``layer{l}.gates.i``   (T, h)      LSTM input gate I_t   (also ``.f`` forget, ``.o`` output)
``layer{l}.gates.z``   (T, h)      GRU update gate Z_t   (also ``.r`` reset)
``layer{l}.candidate`` (T, h)      LSTM C̃_t, GRU H̃_t
``logits``             (T, |V|)    O_t = H_t W_hq + b_q of the top layer
``log_probs``          (T, |V|)    log softmax(O_t): log P(chars[t+1] = v | chars[:t+1])
``probs``              (T, |V|)    softmax(O_t)
``surprisal``          (T-1,)      −log P(chars[t+1]) in nats, for t = 0 … T−2
=====================  ==========  ==========================================================
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .deadline import check
from .model import CharRNN, State
from .vocab import preprocess

#: A documented cap on how many characters one trace takes (see ``trace``).
MAX_TRACE_CHARS = 100_000


class TextError(ValueError):
    """The text cannot be traced (empty, or over the documented cap). The message says why."""


@dataclass
class Trace:
    """Everything one pass over a text produced. Index it by name: ``tr["layer0.h"]``."""

    text: str                       #: the text as traced (after the model's preprocessing)
    chars: list[str]                #: one entry per step, ``len(chars) == T``
    ids: Tensor                     #: (T,) vocabulary ids
    unknown_positions: tuple[int, ...]  #: steps whose character was mapped to ``<unk>``
    cache: dict[str, Tensor]        #: name → tensor, see the module docstring
    final_state: State              #: per-layer (H_T, C_T): pass as ``initial_state`` to continue
    cell: str
    num_layers: int
    preprocessed: bool = False      #: True when the model's preprocessing changed the input text
    original_text: str = ""
    tokens: tuple[str, ...] = field(default_factory=tuple)  #: the vocabulary (index → char)

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.cache[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in this trace; available: {sorted(self.cache)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.cache

    def names(self) -> list[str]:
        return list(self.cache)

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def logits(self) -> Tensor:
        return self.cache["logits"]

    @property
    def probs(self) -> Tensor:
        return self.cache["probs"]

    @property
    def log_probs(self) -> Tensor:
        return self.cache["log_probs"]

    @property
    def surprisal(self) -> Tensor:
        return self.cache["surprisal"]

    @property
    def cross_entropy(self) -> float:
        """Mean surprisal in nats over the T−1 predicted characters (NaN when T < 2)."""
        s = self.surprisal
        return float(s.double().mean()) if s.numel() else math.nan

    @property
    def perplexity(self) -> float:
        """exp(cross-entropy); inf when that overflows a float (a diverging model), NaN when T < 2."""
        ce = self.cross_entropy
        if math.isnan(ce):
            return math.nan
        return math.exp(ce) if ce < math.log(sys.float_info.max) else math.inf

    @property
    def bits_per_char(self) -> float:
        return self.cross_entropy / math.log(2)

    def summary(self) -> dict[str, float]:
        return {"characters": float(len(self)), "cross_entropy": self.cross_entropy,
                "perplexity": self.perplexity, "bits_per_char": self.bits_per_char,
                "unknown": float(len(self.unknown_positions))}

    def state_names(self, layer: int) -> list[str]:
        """The per-unit (T, h) tensors of one layer in this trace: h, c, gates, candidate."""
        prefix = f"layer{layer}."
        return [n for n in self.cache if n.startswith(prefix)]


def linear_recurrence(f: Tensor, u: Tensor, c0: Tensor) -> Tensor:
    """All C_t of C_t = f_t ⊙ C_{t-1} + u_t, for f, u of shape (T, h) and C_{-1} = c0 (h,).

    Two-level scan with no division (so no blow-up when a gate is 0): the steps are cut into
    ~√T chunks; pass 1 runs the recurrence inside every chunk at once from a zero state, also
    keeping the running product of f; pass 2 carries each chunk's end state into the next, and
    C = local + running_product ⊙ carry. About 2√T small vectorised steps instead of T.
    Returns (T, h); equal to the plain loop up to float rounding.
    """
    T, H = u.shape
    K = max(1, math.isqrt(T))
    n = -(-T // K)
    pad = n * K - T
    if pad:
        f = torch.cat([f, f.new_ones(pad, H)])
        u = torch.cat([u, u.new_zeros(pad, H)])
    fc, uc = f.view(n, K, H), u.view(n, K, H)
    local = torch.empty_like(uc)
    prod = torch.empty_like(fc)
    local[:, 0], prod[:, 0] = uc[:, 0], fc[:, 0]
    for k in range(1, K):   # pass 1: every chunk at once, from a zero state
        torch.addcmul(uc[:, k], fc[:, k], local[:, k - 1], out=local[:, k])
        torch.mul(prod[:, k - 1], fc[:, k], out=prod[:, k])
    carry = torch.empty(n, H, dtype=u.dtype)
    prev = c0
    for m in range(n):      # pass 2: the state entering chunk m
        check()
        carry[m] = prev
        prev = torch.addcmul(local[m, -1], prod[m, -1], prev)
    c = torch.addcmul(local, prod, carry[:, None, :])
    return c.reshape(n * K, H)[:T]


@torch.inference_mode()
def trace(model: CharRNN, text: str, initial_state: State | None = None, *,
          gates: bool = True, preprocess_text: bool = True) -> Trace:
    """Run ``model`` over ``text`` and capture every named activation (see module docstring).

    text: any string of 1 … MAX_TRACE_CHARS characters. Characters outside the vocabulary map to
        ``<unk>`` and are listed in ``unknown_positions``. With ``preprocess_text`` the model's own
        preprocessing (e.g. d2l cleaning) is applied first, as in training.
    initial_state: per-layer (h, c), each (h,), e.g. ``previous_trace.final_state``; zeros if None.
    gates: also capture gates, candidates and the LSTM cell (costs one batched matmul per layer).
    Raises TextError for an empty text or one above the cap.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}")
    original = text
    cfg = model.config
    if preprocess_text:
        text = preprocess(text, cfg.preprocessing)
    if len(text) == 0:
        raise TextError("The text is empty: type at least one character to trace.")
    if len(text) > MAX_TRACE_CHARS:
        raise TextError(f"The text has {len(text):,} characters; at most {MAX_TRACE_CHARS:,} can be "
                        "traced at once. Trace it in pieces, passing final_state on.")
    encoded = model.vocab.encode(text)
    ids = encoded.ids
    H = cfg.hidden_size
    dtype = model.output.weight.dtype
    if initial_state is None:
        initial_state = model.zero_state()
    cache: dict[str, Tensor] = {}
    final: State = []
    inp = model.one_hot(ids)  # (T, |V|): layer 0 reads X_t
    for index, layer in enumerate(model.layers):
        h0, c0 = initial_state[index]
        h0 = h0.to(dtype).reshape(1, H)
        if cfg.cell == "lstm":
            c0 = c0.to(dtype).reshape(1, H)
            out, (hn, cn) = layer(inp, (h0, c0))
        else:
            out, hn = layer(inp, h0)
            cn = None
        name = f"layer{index}"
        cache[f"{name}.h"] = out
        if gates and cfg.cell in ("lstm", "gru"):
            w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
            if cfg.cell == "lstm":
                # Every gate pre-activation at once: X_t W_x· + H_{t-1} W_h· + b (T, 4h). Layer 0's
                # one-hot X_t picks a row of W_ih^T, so biases fold into that small (|V|, 4h) table.
                bias = layer.bias_ih_l0 + layer.bias_hh_l0
                pre = (w_ih.T + bias)[ids] if index == 0 else torch.addmm(bias, inp, w_ih.T)
                pre[1:].addmm_(out[:-1], w_hh.T)                     # += H_{t-1} W_hh, in place
                pre[0].addmv_(w_hh, h0[0])
                gate_i = torch.sigmoid(pre[:, :H])                       # torch order: i, f, g, o
                gate_f = torch.sigmoid(pre[:, H:2 * H])
                cand = torch.tanh(pre[:, 2 * H:3 * H])
                # C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t: an elementwise linear recurrence.
                cache[f"{name}.c"] = linear_recurrence(gate_f, gate_i * cand, c0[0])
                cache[f"{name}.gates.i"] = gate_i
                cache[f"{name}.gates.f"] = gate_f
                cache[f"{name}.gates.o"] = torch.sigmoid(pre[:, 3 * H:])
                cache[f"{name}.candidate"] = cand
            else:
                h_prev = torch.cat([h0, out[:-1]], dim=0)          # (T, h): H_{t-1}
                x_part = (w_ih.T[ids] if index == 0 else inp @ w_ih.T) + layer.bias_ih_l0
                h_part = torch.addmm(layer.bias_hh_l0, h_prev, w_hh.T)   # (T, 3h)
                xr, xz, xn = x_part.split(H, dim=1)
                hr, hz, hn_ = h_part.split(H, dim=1)
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                cache[f"{name}.gates.z"] = z
                cache[f"{name}.gates.r"] = r
                cache[f"{name}.candidate"] = torch.tanh(xn + r * hn_)
        if cfg.cell == "lstm":
            final.append((hn[0].clone(), cn[0].clone()))
        else:
            final.append((hn[0].clone(), None))
        inp = out
    logits = torch.addmm(model.output.bias, inp, model.output.weight.T)
    log_probs = torch.log_softmax(logits, dim=-1)
    cache["logits"] = logits
    cache["log_probs"] = log_probs
    cache["probs"] = log_probs.exp()
    cache["surprisal"] = -log_probs[:-1].gather(1, ids[1:, None]).squeeze(1)
    return Trace(text=text, chars=list(text), ids=ids, unknown_positions=encoded.unknown_positions,
                 cache=cache, final_state=final, cell=cfg.cell, num_layers=cfg.num_layers,
                 preprocessed=text != original, original_text=original, tokens=cfg.tokens)
