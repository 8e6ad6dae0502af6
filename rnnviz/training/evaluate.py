"""The validation loss every checkpoint records (procedure in :mod:`rnnviz.training`'s docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import CharRNN

VAL_STREAMS = 16
_EVAL_CHUNK = 1024


def _layers_no_dropout(model: CharRNN, x: torch.Tensor, state):
    """Run the recurrent layers on one-hot x (T, S, V) without dropout whatever the model's mode;
    returns (top layer output (T, S, H), state)."""
    outs, new_state = model.run_layers(x, state, dropout=False)
    return outs[-1], new_state


@torch.no_grad()
def evaluate_loss(model: CharRNN, ids: torch.Tensor, streams: int = VAL_STREAMS) -> float:
    """Mean nats/char on ``ids`` (n,) by the documented procedure (rnnviz.training). Never mutates."""
    ids = ids.reshape(-1)
    n = ids.numel()
    if n < 2:
        raise ValueError("need at least 2 characters to evaluate")
    S = streams if n - 1 >= streams else 1
    L = (n - 1) // S
    dev = model.output.weight.device
    x_all = ids[:S * L].reshape(S, L).T.to(dev)                  # (L, S)
    y_all = ids[1:S * L + 1].reshape(S, L).T.to(dev)
    state = model.zero_state(S)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for start in range(0, L, _EVAL_CHUNK):
        x = x_all[start:start + _EVAL_CHUNK]
        y = y_all[start:start + _EVAL_CHUNK]
        top, state = _layers_no_dropout(model, model.one_hot(x), state)
        logits = model.output(top)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1),
                                 reduction="sum")
    return float(total) / (S * L)
