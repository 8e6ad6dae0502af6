"""Independent reference implementations written out from the textbook equations (float64).

These are deliberately plain per-step loops over ``model.textbook_params(layer)`` — no fused
modules, no code shared with rnnviz.trace — so that tests compare against the book, not ourselves.
"""

from __future__ import annotations

import torch


def textbook_run(model, ids: torch.Tensor, state=None):
    """Step the book's equations. Returns (per-layer dict of (T, h) float64 tensors, logits (T, q)).

    Per layer: "h", and for GRU "z", "r", "candidate"; for LSTM "c", "i", "f", "o", "candidate".
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
        rec = {k: [] for k in ("h", "c", "i", "f", "o", "z", "r", "candidate")}
        for t in range(T):
            xt = x[t]
            if cfg.cell in ("rnn_tanh", "rnn_relu"):
                a = xt @ p["W_xh"] + h @ p["W_hh"] + p["b_h"]
                h = torch.tanh(a) if cfg.cell == "rnn_tanh" else torch.relu(a)
            elif cfg.cell == "gru":
                r = torch.sigmoid(xt @ p["W_xr"] + h @ p["W_hr"] + p["b_r"])
                z = torch.sigmoid(xt @ p["W_xz"] + h @ p["W_hz"] + p["b_z"])
                cand = torch.tanh(xt @ p["W_xh"] + p["b_h"] + r * (h @ p["W_hh"] + p["b_hh"]))
                h = z * h + (1 - z) * cand
                rec["z"].append(z); rec["r"].append(r); rec["candidate"].append(cand)
            else:
                i = torch.sigmoid(xt @ p["W_xi"] + h @ p["W_hi"] + p["b_i"])
                f = torch.sigmoid(xt @ p["W_xf"] + h @ p["W_hf"] + p["b_f"])
                o = torch.sigmoid(xt @ p["W_xo"] + h @ p["W_ho"] + p["b_o"])
                cand = torch.tanh(xt @ p["W_xc"] + h @ p["W_hc"] + p["b_c"])
                c = f * c + i * cand
                h = o * torch.tanh(c)
                for k, v in (("i", i), ("f", f), ("o", o), ("candidate", cand), ("c", c)):
                    rec[k].append(v)
            rec["h"].append(h)
        layers.append({k: torch.stack(v) for k, v in rec.items() if v})
        x = layers[-1]["h"]
    p = {k: v.double() for k, v in model.textbook_params(0).items()}
    logits = x @ p["W_hq"] + p["b_q"]
    return layers, logits


def cell_run(model, ids: torch.Tensor):
    """Step PyTorch's own nn.RNNCell / GRUCell / LSTMCell with the model's weights (float64)."""
    cfg = model.config
    x = torch.nn.functional.one_hot(ids, cfg.vocab_size).double()
    outs = []
    for mod in model.layers:
        d = mod.weight_ih_l0.shape[1]
        if cfg.cell == "lstm":
            cell = torch.nn.LSTMCell(d, cfg.hidden_size)
        elif cfg.cell == "gru":
            cell = torch.nn.GRUCell(d, cfg.hidden_size)
        else:
            cell = torch.nn.RNNCell(d, cfg.hidden_size, nonlinearity=cfg.cell[4:])
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
