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

Each layer is one fused PyTorch module (nn.RNN / nn.GRU / nn.LSTM with one layer), so a trace gets
every H_t of every layer at fused speed. PyTorch keeps two biases (b_ih, b_hh) per gate; where they
are simply added the textbook view merges them into the book's one bias (b_h = b_ih + b_hh). The
GRU candidate's b_hh cannot merge (R_t multiplies it) and is shown as its own ``b_hh``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vocab import PREPROCESSING, Vocab

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm")

#: Sanity limits for configs (a checkpoint claiming more is refused, see checkpoint.py).
MAX_HIDDEN = 4096
MAX_LAYERS = 8
MAX_VOCAB = 100_000

#: Per-layer recurrent state: (H, C) with C None except for the LSTM. Shapes (B, h) or (h,).
LayerState = tuple[Tensor, "Tensor | None"]
State = list[LayerState]

# Row order of the gate blocks inside PyTorch's weight_ih / weight_hh / biases.
_GATE_ORDER = {"gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}
# Textbook names for each gate block: (input weight, hidden weight, bias).
_LSTM_NAMES = {"i": ("W_xi", "W_hi", "b_i"), "f": ("W_xf", "W_hf", "b_f"),
               "o": ("W_xo", "W_ho", "b_o"), "g": ("W_xc", "W_hc", "b_c")}
_GRU_NAMES = {"z": ("W_xz", "W_hz", "b_z"), "r": ("W_xr", "W_hr", "b_r"), "n": ("W_xh", "W_hh", "b_h")}


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
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {CELLS}")
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


def _make_layer(cell: str, input_size: int, hidden_size: int) -> nn.RNNBase:
    if cell in ("rnn_tanh", "rnn_relu"):
        return nn.RNN(input_size, hidden_size, nonlinearity=cell[4:])
    if cell == "gru":
        return nn.GRU(input_size, hidden_size)
    return nn.LSTM(input_size, hidden_size)


class CharRNN(nn.Module):
    """Char-level RNN language model: one-hot X_t → L recurrent layers → O_t = H_t W_hq + b_q."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab = config.vocabulary
        V, H = config.vocab_size, config.hidden_size
        self.layers = nn.ModuleList(
            _make_layer(config.cell, V if layer == 0 else H, H) for layer in range(config.num_layers))
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(H, V)

    # ------------------------------------------------------------------ forward
    @property
    def is_lstm(self) -> bool:
        return self.config.cell == "lstm"

    def one_hot(self, ids: Tensor) -> Tensor:
        """ids (T, B) or (T,) → X (T, B, |V|) or (T, |V|) float one-hot."""
        return F.one_hot(ids, self.config.vocab_size).to(self.output.weight.dtype)

    def run_layers(self, x: Tensor, state: State | None = None) -> tuple[list[Tensor], State]:
        """Run every layer over a whole sequence.

        x: (T, B, d) inputs of layer 0 (one-hot). state: per-layer (h, c), each (B, h), or None
        for zeros. Returns the per-layer hidden states [(T, B, h)] and the final state.
        """
        outs, final = [], []
        inp = x
        for index, layer in enumerate(self.layers):
            if index > 0:
                inp = self.drop(inp)
            hx = None
            if state is not None:
                h0, c0 = state[index]
                hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if self.is_lstm else h0.unsqueeze(0)
            out, hn = layer(inp, hx)
            if self.is_lstm:
                final.append((hn[0][0], hn[1][0]))
            else:
                final.append((hn[0], None))
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
        return [(w.new_zeros(shape), w.new_zeros(shape) if self.is_lstm else None)
                for _ in range(self.config.num_layers)]

    # ------------------------------------------------------------------ textbook view
    def textbook_params(self, layer: int = 0) -> dict[str, Tensor]:
        """The layer's parameters under d2l's names, as detached copies (row-vector convention).

        rnn_*: W_xh (d×h), W_hh (h×h), b_h (h,) with b_h = b_ih + b_hh.
        gru:   W_xz, W_hz, b_z, W_xr, W_hr, b_r (merged biases), W_xh, W_hh, b_h (= b_ih of the
               candidate) and b_hh (the candidate's hidden bias, inside R_t ⊙ (…)).
        lstm:  W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c (merged biases).
        Plus, for every layer, the output layer W_hq (h×q) and b_q (q,).
        """
        if not 0 <= layer < self.config.num_layers:
            raise IndexError(f"layer {layer} out of range 0..{self.config.num_layers - 1}")
        mod = self.layers[layer]
        w_ih, w_hh = mod.weight_ih_l0.detach(), mod.weight_hh_l0.detach()
        b_ih, b_hh = mod.bias_ih_l0.detach(), mod.bias_hh_l0.detach()
        out: dict[str, Tensor] = {}
        cell = self.config.cell
        if cell.startswith("rnn"):
            out.update(W_xh=w_ih.T.clone(), W_hh=w_hh.T.clone(), b_h=(b_ih + b_hh).clone())
        else:
            names = _LSTM_NAMES if cell == "lstm" else _GRU_NAMES
            H = self.config.hidden_size
            for k, gate in enumerate(_GATE_ORDER[cell]):
                rows = slice(k * H, (k + 1) * H)
                wx, wh, b = names[gate]
                out[wx] = w_ih[rows].T.clone()
                out[wh] = w_hh[rows].T.clone()
                if cell == "gru" and gate == "n":
                    out[b] = b_ih[rows].clone()
                    out["b_hh"] = b_hh[rows].clone()
                else:
                    out[b] = (b_ih[rows] + b_hh[rows]).clone()
        out["W_hq"] = self.output.weight.detach().T.clone()
        out["b_q"] = self.output.bias.detach().clone()
        return out

    @torch.no_grad()
    def set_textbook_params(self, layer: int, params: dict[str, Tensor]) -> None:
        """Inverse of :meth:`textbook_params` (merged biases go to b_ih, b_hh becomes 0).

        Missing names are left as they are. Used to build hand-made networks for teaching/tests.
        """
        mod = self.layers[layer]
        cell = self.config.cell
        H = self.config.hidden_size
        if cell.startswith("rnn"):
            blocks = {"": ("W_xh", "W_hh", "b_h")}
            slices = {"": slice(0, H)}
        else:
            names = _LSTM_NAMES if cell == "lstm" else _GRU_NAMES
            blocks = {g: names[g] for g in _GATE_ORDER[cell]}
            slices = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(_GATE_ORDER[cell])}
        for gate, (wx, wh, b) in blocks.items():
            rows = slices[gate]
            if wx in params:
                mod.weight_ih_l0[rows] = params[wx].T
            if wh in params:
                mod.weight_hh_l0[rows] = params[wh].T
            if b in params:
                mod.bias_ih_l0[rows] = params[b]
                if not (cell == "gru" and gate == "n"):
                    mod.bias_hh_l0[rows] = 0.0
            if cell == "gru" and gate == "n" and "b_hh" in params:
                mod.bias_hh_l0[rows] = params["b_hh"]
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


def build_model(config: ModelConfig, seed: int | None = None) -> CharRNN:
    """A freshly initialised model in eval mode (PyTorch's default init, optionally seeded)."""
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = CharRNN(config)
    else:
        model = CharRNN(config)
    return model.eval()
