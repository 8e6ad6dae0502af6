"""Independent reference implementations written out from the textbook equations (float64).

These are deliberately plain per-step loops over ``model.textbook_params(layer)`` — no fused
modules, no code shared with rnnviz.trace — so that tests compare against the book, not ourselves.
"""

from __future__ import annotations

import torch


def textbook_step(cell: str, p: dict, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None,
                   probe_c: torch.Tensor | None = None) -> dict:
    """One step of the book's equations for ``cell`` with textbook parameters ``p`` (the names of
    ``model.textbook_params``). Returns {"h", and per cell "c", "i", "f", "o", "z", "r",
    "candidate"}. ``probe_c`` is added to the LSTM's C_t before H_t = O_t ⊙ tanh(C_t)."""
    if cell in ("rnn_tanh", "rnn_relu"):
        a = x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"]
        return {"h": torch.tanh(a) if cell == "rnn_tanh" else torch.relu(a)}
    if cell in ("gru", "gru_d2l"):
        r = torch.sigmoid(x @ p["W_xr"] + h @ p["W_hr"] + p["b_r"])
        z = torch.sigmoid(x @ p["W_xz"] + h @ p["W_hz"] + p["b_z"])
        if cell == "gru":      # PyTorch's form: R_t ⊙ (H_{t-1} W_hh + b_hh)
            cand = torch.tanh(x @ p["W_xh"] + p["b_h"] + r * (h @ p["W_hh"] + p["b_hh"]))
        else:                  # d2l §10.2: (R_t ⊙ H_{t-1}) W_hh, one bias
            cand = torch.tanh(x @ p["W_xh"] + (r * h) @ p["W_hh"] + p["b_h"])
        return {"h": z * h + (1 - z) * cand, "z": z, "r": r, "candidate": cand}
    if cell != "lstm":         # a new cell in rnnviz/cells/ gets its textbook equations here
        raise NotImplementedError(f"no textbook reference for cell {cell!r} in tests/reference.py")
    i = torch.sigmoid(x @ p["W_xi"] + h @ p["W_hi"] + p["b_i"])
    f = torch.sigmoid(x @ p["W_xf"] + h @ p["W_hf"] + p["b_f"])
    o = torch.sigmoid(x @ p["W_xo"] + h @ p["W_ho"] + p["b_o"])
    cand = torch.tanh(x @ p["W_xc"] + h @ p["W_hc"] + p["b_c"])
    c = f * c + i * cand
    if probe_c is not None:
        c = c + probe_c
    return {"h": o * torch.tanh(c), "c": c, "i": i, "f": f, "o": o, "candidate": cand}


def textbook_run(model, ids: torch.Tensor, state=None, *, probes_h=None, probes_c=None, cuts=()):
    """Step the book's equations over ids (T,). Returns (per-layer dict of (T, h) float64 tensors,
    logits (T, q)).

    Per layer: "h", and for the GRUs "z", "r", "candidate"; for the LSTM "c", "i", "f", "o",
    "candidate". ``probes_h[l]`` / ``probes_c[l]`` (T, h) are added to H_t / C_t of layer l right
    after they are computed (for ∂L/∂H_t by autograd); ``cuts``: steps t at which H_{t−1}
    (and C_{t−1}) are detached (truncated BPTT). Differentiable (nothing is detached otherwise).
    """
    cfg = model.config
    T, H = ids.numel(), cfg.hidden_size
    x = torch.nn.functional.one_hot(ids, cfg.vocab_size).double()
    layers = []
    for layer in range(cfg.num_layers):
        p = {k: v.double() for k, v in model.textbook_params(layer).items()}
        if state is None:
            h = torch.zeros(H, dtype=torch.float64)
            c = torch.zeros(H, dtype=torch.float64)
        else:
            h = state[layer][0].double()
            c = state[layer][1].double() if state[layer][1] is not None else None
        rec: dict[str, list] = {}
        for t in range(T):
            if t in cuts:
                h, c = h.detach(), (c.detach() if c is not None else None)
            out = textbook_step(cfg.cell, p, x[t], h, c, None if probes_c is None else probes_c[layer][t])
            if probes_h is not None:
                out["h"] = out["h"] + probes_h[layer][t]
            h, c = out["h"], out.get("c", c)
            for k, v in out.items():
                rec.setdefault(k, []).append(v)
        layers.append({k: torch.stack(v) for k, v in rec.items()})
        x = layers[-1]["h"]
    p = {k: v.double() for k, v in model.textbook_params(0).items()}
    logits = x @ p["W_hq"] + p["b_q"]
    return layers, logits


#: Cell name → PyTorch's own one-step module (and its arguments); a cell PyTorch lacks is absent.
TORCH_CELLS = {"rnn_tanh": (torch.nn.RNNCell, {"nonlinearity": "tanh"}),
               "rnn_relu": (torch.nn.RNNCell, {"nonlinearity": "relu"}),
               "gru": (torch.nn.GRUCell, {}), "lstm": (torch.nn.LSTMCell, {})}


def cell_run(model, ids: torch.Tensor):
    """Step PyTorch's own nn.RNNCell / GRUCell / LSTMCell with the model's weights (float64).
    (None, None) for a cell PyTorch has no module for (the book's GRU)."""
    cfg = model.config
    if cfg.cell not in TORCH_CELLS:
        return None, None
    x = torch.nn.functional.one_hot(ids, cfg.vocab_size).double()
    outs = []
    for mod in model.layers:
        cls, kwargs = TORCH_CELLS[cfg.cell]
        cell = cls(mod.weight_ih_l0.shape[1], cfg.hidden_size, **kwargs)
        with torch.no_grad():
            cell.weight_ih.copy_(mod.weight_ih_l0)
            cell.weight_hh.copy_(mod.weight_hh_l0)
            cell.bias_ih.copy_(mod.bias_ih_l0)
            cell.bias_hh.copy_(mod.bias_hh_l0)
        cell = cell.double()
        h = torch.zeros(1, cfg.hidden_size, dtype=torch.float64)
        c = torch.zeros_like(h)
        hs = []
        with torch.no_grad():
            for t in range(ids.numel()):
                if cfg.cell == "lstm":
                    h, c = cell(x[t:t + 1], (h, c))
                else:
                    h = cell(x[t:t + 1], h)
                hs.append(h[0])
        outs.append(torch.stack(hs))
        x = outs[-1]
    logits = x @ model.output.weight.double().T + model.output.bias.double()
    return outs, logits
