"""Step a model through a text and capture every activation by name (TransformerLens-style).

``trace(model, text)`` runs each layer as one fused PyTorch call (nn.RNN/GRU/LSTM) to get every
H_t, then recovers the gates from one batched matmul over all steps, since every gate at step t is a
function of X_t and H_{t-1} only. The LSTM memory cell follows from C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t.
The model's math is never changed: the trace only reads what the fused run computes. The per-cell
maths (one step, gate recovery) lives in :mod:`rnnviz.cells`.

Hooks (TransformerLens-style): ``trace(model, text, hooks={"layer0.h": fn})`` calls
``fn(value, t)`` with each step's activation (h,) of that name; returning a tensor (h,) replaces it
for everything downstream. A layer with a hook runs step by step (the cell spec's ``step``), the
others stay fused, so a trace without hooks is exactly the fused fast path. Hook names: :func:`hook_names`.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .cells import input_part
from .cells.params import run_layer
from .serving.deadline import check
from .model import CharRNN, State
from .vocab import preprocess
from .names import act_name, layer_of, parse_act_name

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
        return [n for n in self.cache if layer_of(n) == layer]


#: A trace hook: ``fn(value, t)`` sees one activation (h,) at step t; a returned tensor of the same
#: shape replaces it, None keeps it.
Hook = Callable[[Tensor, int], "Tensor | None"]


class HookError(ValueError):
    """A hook was refused (unknown name, not callable, or a replacement of the wrong shape)."""


def hook_names(model: CharRNN) -> list[str]:
    """Every name a hook may be put on for this model: ``layer{l}.<term>`` for the cell's terms
    (``h``; LSTM also ``c``, ``gates.i/f/o``, ``candidate``; GRU ``gates.r/z``, ``candidate``)."""
    return [act_name(l, term) for l in range(model.config.num_layers) for term in model.spec.terms]


def _hooks_by_layer(model: CharRNN, hooks: Mapping[str, Hook] | None) -> dict[int, dict[str, Hook]]:
    """Validate ``hooks`` and group them: layer index → term → fn. Raises HookError."""
    if not hooks:
        return {}
    if not isinstance(hooks, Mapping):
        raise HookError(f"hooks must be a dict of name → function, got {type(hooks).__name__}")
    valid = hook_names(model)
    unknown = [n for n in hooks if n not in valid]
    if unknown:
        raise HookError(f"unknown hook name(s) {unknown}; a {model.config.cell} model with "
                        f"{model.config.num_layers} layer(s) has: {valid}")
    grouped: dict[int, dict[str, Hook]] = {}
    for name, fn in hooks.items():
        if not callable(fn):
            raise HookError(f"the hook on {name!r} is not callable")
        layer, term = parse_act_name(name)
        grouped.setdefault(layer, {})[term] = fn
    return grouped


def _editor(layer_hooks: dict[str, Hook], index: int, t: int) -> Callable[[str, Tensor], Tensor]:
    """The ``edit`` callback of one step (see rnnviz.cells): runs the hook on each hooked term."""
    def edit(term: str, value: Tensor) -> Tensor:
        fn = layer_hooks.get(term)
        if fn is None:
            return value
        out = fn(value.clone(), t)           # a clone: a hook that returns None changes nothing
        if out is None:
            return value
        out = torch.as_tensor(out, dtype=value.dtype)
        if out.shape != value.shape:
            raise HookError(f"the hook on '{act_name(index, term)}' returned shape {tuple(out.shape)} at "
                            f"step {t}; expected {tuple(value.shape)}")
        return out
    return edit


def _fused_layer(model: CharRNN, index: int, inp: Tensor, ids: Tensor, h0: Tensor, c0: Tensor | None,
                 gates: bool, cache: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor | None]]:
    """Layer ``index`` as one fused call over inputs (T, d) from (h0, c0) (h,); gates recovered
    afterwards (module docstring). Writes its names into ``cache``; returns H (T, h), (H_T, C_T)."""
    layer = model.layers[index]
    out, hn, cn = run_layer(layer, inp, h0, c0)
    cache[act_name(index, "h")] = out
    recover = model.spec.recover
    if gates and recover is not None:
        terms = recover(layer, inp, ids if index == 0 else None, out, h0, c0)
        cache.update((act_name(index, term), value) for term, value in terms.items())
    return out, (hn.clone(), None if cn is None else cn.clone())


def _stepped_layer(model: CharRNN, index: int, inp: Tensor, h0: Tensor, c0: Tensor | None, gates: bool,
                   layer_hooks: dict[str, Hook],
                   cache: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor | None]]:
    """Layer ``index`` one step at a time (rnnviz.cells) with its hooks; same contract as
    :func:`_fused_layer`. A replaced activation is what the next step and the layers above read."""
    layer = model.layers[index]
    step = model.spec.step
    recorded = model.spec.terms if gates else ("h",)
    x_part = input_part(layer, inp)                                        # (T, G·h)
    out = {term: inp.new_empty((inp.shape[0], model.config.hidden_size)) for term in recorded}
    h, c = h0, c0
    for t in range(inp.shape[0]):
        check()
        terms = step(layer, x_part[t], h, c, _editor(layer_hooks, index, t))
        for term in recorded:
            out[term][t] = terms[term]
        h, c = terms["h"], terms.get("c")
    for term in recorded:
        cache[act_name(index, term)] = out[term]
    return out["h"], (h.clone(), None if c is None else c.clone())


@torch.inference_mode()
def trace_ids(model: CharRNN, ids: Tensor, initial_state: State | None = None, *, gates: bool = True,
              hooks: Mapping[str, Hook] | None = None) -> tuple[dict[str, Tensor], State]:
    """The layers and output of :func:`trace` on vocabulary ids (T,) long: returns the cache
    (names of the module docstring) and the final state. A layer with a hook runs step by step,
    every other one fused (so without hooks this is the fused fast path)."""
    by_layer = _hooks_by_layer(model, hooks)
    dtype = model.output.weight.dtype
    if initial_state is None:
        initial_state = model.zero_state()
    cache: dict[str, Tensor] = {}
    final: State = []
    inp = model.one_hot(ids)  # (T, |V|): layer 0 reads X_t
    for index in range(len(model.layers)):
        h0, c0 = initial_state[index]
        h0 = h0.to(dtype).reshape(-1)
        c0 = c0.to(dtype).reshape(-1) if model.has_cell_state else None
        if index in by_layer:
            inp, state = _stepped_layer(model, index, inp, h0, c0, gates, by_layer[index], cache)
        else:
            inp, state = _fused_layer(model, index, inp, ids, h0, c0, gates, cache)
        final.append(state)
    logits = torch.addmm(model.output.bias, inp, model.output.weight.T)
    log_probs = torch.log_softmax(logits, dim=-1)
    cache["logits"] = logits
    cache["log_probs"] = log_probs
    cache["probs"] = log_probs.exp()
    cache["surprisal"] = -log_probs[:-1].gather(1, ids[1:, None]).squeeze(1)
    return cache, final


def trace(model: CharRNN, text: str, initial_state: State | None = None, *,
          gates: bool = True, preprocess_text: bool = True,
          hooks: Mapping[str, Hook] | None = None) -> Trace:
    """Run ``model`` over ``text`` and capture every named activation (see module docstring).

    text: any string of 1 … MAX_TRACE_CHARS characters. Characters outside the vocabulary map to
        ``<unk>`` and are listed in ``unknown_positions``. With ``preprocess_text`` the model's own
        preprocessing (e.g. d2l cleaning) is applied first, as in training.
    initial_state: per-layer (h, c), each (h,), e.g. ``previous_trace.final_state``; zeros if None.
    gates: also capture gates, candidates and the LSTM cell (costs one batched matmul per layer).
    hooks: trace name → ``fn(value, t)`` (see :data:`Hook`, names in :func:`hook_names`), called at
        every step t right after that activation (h,) is computed. ``fn`` gets a copy; returning a
        tensor of shape (h,) replaces the activation — in the trace and in everything computed
        from it (the rest of the step, later steps, the layers above, the predictions); returning
        None keeps it. A layer with hooks runs step by step (rnnviz.cells), the others fused.
    Raises TextError for an empty text or one above the cap, HookError for an unknown hook name.
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
    cache, final = trace_ids(model, encoded.ids, initial_state, gates=gates, hooks=hooks)
    return Trace(text=text, chars=list(text), ids=encoded.ids, unknown_positions=encoded.unknown_positions,
                 cache=cache, final_state=final, cell=cfg.cell, num_layers=cfg.num_layers,
                 preprocessed=text != original, original_text=original, tokens=cfg.tokens)
