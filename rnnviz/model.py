"""The character-level recurrent language model, readable top to bottom.

Notation follows Dive into Deep Learning (d2l) §9.4 ("Recurrent Neural Networks"): a row vector per
time step, weights multiplied on the right.

    X_t   one-hot of the character read at step t        (1 × d), d = |V| for layer 0
    H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)                 (1 × h)   rnn_tanh: φ = tanh, rnn_relu: φ = ReLU
    O_t = H_t W_hq + b_q                                   (1 × q), q = |V|
    P(next char | chars[:t+1]) = softmax(O_t)

Deeper layers read the hidden state of the layer below instead of X_t (so their d = h).

GRU (the PyTorch / cuDNN form, which this project computes exactly; the book puts R_t ⊙ H_{t-1}
*inside* the product with W_hh instead, and has no b_hh):

    R_t = σ(X_t W_xr + H_{t-1} W_hr + b_r)
    Z_t = σ(X_t W_xz + H_{t-1} W_hz + b_z)
    H̃_t = tanh(X_t W_xh + b_h + R_t ⊙ (H_{t-1} W_hh + b_hh))
    H_t = Z_t ⊙ H_{t-1} + (1 − Z_t) ⊙ H̃_t

LSTM (exactly the book's equations, d2l §10.1):

    I_t = σ(X_t W_xi + H_{t-1} W_hi + b_i)      F_t = σ(X_t W_xf + H_{t-1} W_hf + b_f)
    O_t = σ(X_t W_xo + H_{t-1} W_ho + b_o)      C̃_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c)
    C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t             H_t = O_t ⊙ tanh(C_t)

The book's own GRU (``gru_d2l``, d2l §10.2) gates H_{t-1} before the product and has one bias per gate:

    H̃_t = tanh(X_t W_xh + (R_t ⊙ H_{t-1}) W_hh + b_h)      (R_t, Z_t, H_t as above)

Each layer is one fused PyTorch module (nn.RNN / nn.GRU / nn.LSTM with one layer), so a trace gets
every H_t of every layer at fused speed; the book's GRU, which PyTorch has no module for, steps its
equations (rnnviz.cells.gru_d2l.D2LGRU). Everything per cell is in its spec (:mod:`rnnviz.cells`). PyTorch keeps two biases (b_ih, b_hh) per gate; where they
are simply added the textbook view merges them into the book's one bias (b_h = b_ih + b_hh). The
GRU candidate's b_hh cannot merge (R_t multiplies it) and is shown as its own ``b_hh``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import CELLS, CellSpec, spec
from .cells.params import run_layer, set_textbook_params, textbook_params
from .vocab import PREPROCESSING, Vocab

#: Sanity limits for configs (a checkpoint claiming more is refused, see checkpoint.py).
MAX_HIDDEN = 4096
MAX_LAYERS = 8
MAX_VOCAB = 100_000

#: Per-layer recurrent state: (H, C) with C None except for the LSTM. Shapes (B, h) or (h,).
LayerState = tuple[Tensor, "Tensor | None"]
State = list[LayerState]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model (its weights aside).

    cell: one of ``CELLS``; hidden_size: h; num_layers: stacked layers; tokens: the vocabulary
    (``tokens[0] == "<unk>"``); preprocessing: what the training text went through ("none"/"d2l");
    dropout: between layers, training only.
    """

    cell: str
    hidden_size: int
    num_layers: int
    tokens: tuple[str, ...]
    preprocessing: str = "none"
    dropout: float = 0.0

    def __post_init__(self):
        spec(self.cell)  # ValueError for an unknown cell
        for name, value, top in (("hidden_size", self.hidden_size, MAX_HIDDEN),
                                 ("num_layers", self.num_layers, MAX_LAYERS),
                                 ("vocab_size", len(self.tokens), MAX_VOCAB)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ValueError(f"{name} must be an integer in 1..{top}, got {value!r}")
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"unknown preprocessing {self.preprocessing!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "tokens", tuple(self.tokens))
        Vocab(list(self.tokens))  # validates the token list

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def vocabulary(self) -> Vocab:
        return Vocab(list(self.tokens))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens"] = list(self.tokens)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {"cell", "hidden_size", "num_layers", "tokens", "preprocessing", "dropout"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**{**d, "tokens": tuple(d.get("tokens", ()))})


class CharRNN(nn.Module):
    """Char-level RNN language model: one-hot X_t → L recurrent layers → O_t = H_t W_hq + b_q."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab = config.vocabulary
        V, H = config.vocab_size, config.hidden_size
        self.spec: CellSpec = spec(config.cell)
        self.layers = nn.ModuleList(
            self.spec.make_layer(V if layer == 0 else H, H) for layer in range(config.num_layers))
        #: Draws the dropout masks (training only); :meth:`seed_dropout` sets it. Never the global RNG.
        self.dropout_generator: torch.Generator | None = None
        self.output = nn.Linear(H, V)

    # ------------------------------------------------------------------ dropout
    def seed_dropout(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Seed the generator of the dropout masks (the Trainer does so before every step)."""
        self.dropout_generator = torch.Generator(device=device).manual_seed(int(seed))

    def drop(self, x: Tensor) -> Tensor:
        """Inverted dropout with p = config.dropout in training mode, masks from
        :attr:`dropout_generator` (seeded at random on first use if never seeded); identity otherwise."""
        p = self.config.dropout
        if not self.training or p == 0.0:
            return x
        g = self.dropout_generator
        if g is None or g.device != x.device:
            g = self.dropout_generator = torch.Generator(device=x.device).manual_seed(
                int.from_bytes(os.urandom(7), "little"))
        mask = torch.empty_like(x).bernoulli_(1.0 - p, generator=g)
        return x * mask.div_(1.0 - p)

    # ------------------------------------------------------------------ forward
    @property
    def has_cell_state(self) -> bool:
        """Whether each layer carries C_t besides H_t (the LSTM)."""
        return self.spec.has_cell_state

    def one_hot(self, ids: Tensor) -> Tensor:
        """ids (T, B) or (T,) → X (T, B, |V|) or (T, |V|) float one-hot."""
        return F.one_hot(ids, self.config.vocab_size).to(self.output.weight.dtype)

    def run_layers(self, x: Tensor, state: State | None = None, *,
                   dropout: bool = True) -> tuple[list[Tensor], State]:
        """Run every layer over a whole sequence.

        x: (T, B, d) (or unbatched (T, d)) inputs of layer 0 (one-hot). state: per-layer (h, c),
        each (B, h) (or (h,)), or None for zeros. dropout: apply the between-layer dropout (only
        active in training mode anyway). Returns the per-layer hidden states [(T, [B,] h)] and
        the final state.
        """
        if state is None:
            state = self.zero_state(x.shape[1] if x.dim() == 3 else None)
        outs, final = [], []
        inp = x
        for index, layer in enumerate(self.layers):
            if index > 0 and dropout:
                inp = self.drop(inp)
            h0, c0 = state[index]
            out, hn, cn = run_layer(layer, inp, h0, c0 if self.has_cell_state else None)
            final.append((hn, cn))
            outs.append(out)
            inp = out
        return outs, final

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """ids (T, B) long → logits O (T, B, |V|) and the final state."""
        outs, final = self.run_layers(self.one_hot(ids), state)
        return self.output(self.drop(outs[-1])), final

    def zero_state(self, batch: int | None = None) -> State:
        """All-zero state; per layer (h, c) of shape (batch, h), or (h,) when batch is None."""
        shape = (self.config.hidden_size,) if batch is None else (batch, self.config.hidden_size)
        w = self.output.weight
        return [(w.new_zeros(shape), w.new_zeros(shape) if self.has_cell_state else None)
                for _ in range(self.config.num_layers)]

    # ------------------------------------------------------------------ textbook view
    def textbook_params(self, layer: int = 0) -> dict[str, Tensor]:
        """The layer's parameters under d2l's names, as detached copies (row-vector convention).

        rnn_*: W_xh (d×h), W_hh (h×h), b_h (h,) with b_h = b_ih + b_hh.
        gru:   W_xz, W_hz, b_z, W_xr, W_hr, b_r (merged biases), W_xh, W_hh, b_h (= b_ih of the
               candidate) and b_hh (the candidate's hidden bias, inside R_t ⊙ (…)).
        lstm:  W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c (merged biases).
        gru_d2l: W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h (its own single biases).
        Plus, for every layer, the output layer W_hq (h×q) and b_q (q,).
        """
        if not 0 <= layer < self.config.num_layers:
            raise IndexError(f"layer {layer} out of range 0..{self.config.num_layers - 1}")
        out = textbook_params(self.spec, self.layers[layer], self.config.hidden_size)
        out["W_hq"] = self.output.weight.detach().T.clone()
        out["b_q"] = self.output.bias.detach().clone()
        return out

    @torch.no_grad()
    def set_textbook_params(self, layer: int, params: dict[str, Tensor]) -> None:
        """Inverse of :meth:`textbook_params` (merged biases go to b_ih, b_hh becomes 0).

        Missing names are left as they are. Used to build hand-made networks for teaching/tests.
        """
        set_textbook_params(self.spec, self.layers[layer], self.config.hidden_size, params)
        if "W_hq" in params:
            self.output.weight.copy_(params["W_hq"].T)
        if "b_q" in params:
            self.output.bias.copy_(params["b_q"])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> dict:
        """A small plain dict for model cards."""
        c = self.config
        return {"cell": c.cell, "layers": c.num_layers, "hidden_size": c.hidden_size,
                "vocab_size": c.vocab_size, "preprocessing": c.preprocessing,
                "parameters": self.num_parameters()}


def empty_model(config: ModelConfig) -> CharRNN:
    """A model with uninitialised weights (built on the meta device, then given CPU memory): no
    random draw, no initialisation cost. For loading weights into, or reading shapes from."""
    with torch.device("meta"):
        model = CharRNN(config)
    return model.to_empty(device="cpu")


def init_parameters(model: CharRNN, generator: torch.Generator) -> None:
    """PyTorch's default initialisation drawn from ``generator`` only (never the global RNG).

    Every recurrent parameter uniform in ±1/√h (as nn.RNN/GRU/LSTM and D2LGRU), the output layer as
    nn.Linear (kaiming-uniform with a = √5, bias ±1/√h), in the modules' construction order: the
    same numbers PyTorch's own init gives after seeding the global generator with s.
    """
    bound = 1.0 / math.sqrt(model.config.hidden_size)
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.parameters():
                nn.init.uniform_(p, -bound, bound, generator=generator)
        nn.init.kaiming_uniform_(model.output.weight, a=math.sqrt(5), generator=generator)
        nn.init.uniform_(model.output.bias, -bound, bound, generator=generator)


def build_model(config: ModelConfig, seed: int | None = None) -> CharRNN:
    """A freshly initialised model in eval mode (PyTorch's default init from its own generator,
    seeded with ``seed``, or a fresh random seed when None). No global random state is read or
    changed, so a neighbour reseeding torch's RNG cannot change the weights."""
    if seed is None:
        seed = int.from_bytes(os.urandom(7), "little")
    model = empty_model(config)
    init_parameters(model, torch.Generator().manual_seed(int(seed)))
    return model.eval()
