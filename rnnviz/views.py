"""Pure data preparation for the explorer's views (no Streamlit, no Plotly).

Everything a view shows that is more than "index the trace" is computed here, so it is testable and
the pages stay thin: unit orderings, windows and downsampling of long texts, gate saturation,
top-k tables, the textbook decomposition of one step, and the trace as a pandas DataFrame.

Orderings
    ``"trained"``    units as the model stores them (0 … h−1);
    ``"variance"``   most variable over the text first;
    ``"clustered"``  similar units next to each other: a greedy nearest-neighbour chain under the
                     correlation distance 1 − corr(u, v), starting from the most variable unit.
    ``"pattern"``    units sorted by the angle of their loadings on the first two principal
                     components of the standardised (T, h) activations (angular seriation): units
                     with similar time courses sit together and the pattern changes smoothly from
                     the top row to the bottom one, so the heatmap shows bands; constant units last.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .cells import spec
from .model import CharRNN
from .trace import Trace
from .names import act_name, layer_of

ORDERINGS = ("trained", "variance", "clustered", "pattern")
#: Cells in one full-resolution heatmap window (units × steps) before the window is narrowed.
HEATMAP_CELL_BUDGET = 80_000
#: Columns and rows of the whole-text overview strip.
OVERVIEW_MAX_COLUMNS = 400
OVERVIEW_MAX_ROWS = 256
#: Saturation thresholds of gates (d2l: a gate near 0 or 1 acts as a switch).
SAT_LOW, SAT_HIGH = 0.1, 0.9


# --------------------------------------------------------------------------- orderings
def unit_variance(values: Tensor) -> Tensor:
    """Per-unit variance over time of a (T, h) tensor (population variance; 0 for T = 1).

    Over the finite values only: an overflowed model's inf/NaN steps are left out (0 for a unit
    with no finite value), so the result is always finite and orderable."""
    v = values.double()
    if v.shape[0] == 0:
        return torch.zeros(v.shape[1], dtype=v.dtype)
    if bool(torch.isfinite(v).all()):
        return v.var(dim=0, unbiased=False)
    v = torch.where(torch.isfinite(v), v, torch.full_like(v, math.nan))
    var = ((v - v.nanmean(dim=0)) ** 2).nanmean(dim=0)
    return torch.nan_to_num(var, nan=0.0, posinf=0.0)


def finite_steps(values: Tensor) -> Tensor:
    """The rows (steps) of a (T, h) tensor whose values are all finite (those before an overflow)."""
    ok = torch.isfinite(values).all(dim=1)
    return values if bool(ok.all()) else values[ok]


def unit_correlation(values: Tensor) -> Tensor:
    """(h, h) Pearson correlation of units over time; constant units correlate 0 (1 with themselves)."""
    v = values.double()
    v = v - v.mean(dim=0, keepdim=True)
    norm = v.norm(dim=0)
    ok = norm > 1e-12
    v = torch.where(ok, v / torch.where(ok, norm, torch.ones_like(norm)), torch.zeros_like(v))
    corr = v.T @ v
    corr.fill_diagonal_(1.0)
    return corr.clamp(-1.0, 1.0)


def unit_order(values: Tensor, method: str = "trained") -> list[int]:
    """An ordering of the h units of a (T, h) tensor; see the module docstring for the methods."""
    if method not in ORDERINGS:
        raise ValueError(f"unknown ordering {method!r}; expected one of {ORDERINGS}")
    h = values.shape[1]
    if method == "trained" or h <= 1:
        return list(range(h))
    var = unit_variance(values)
    values = finite_steps(values)        # correlations and patterns: the steps before an overflow
    by_var = sorted(range(h), key=lambda u: (-float(var[u]), u))
    if method == "variance":
        return by_var
    if method == "pattern":
        return _pattern_order(values, var)
    # clustered: greedy nearest-neighbour chain on 1 − corr; constant units go last.
    live = [u for u in by_var if float(var[u]) > 1e-12]
    dead = [u for u in by_var if float(var[u]) <= 1e-12]
    if len(live) <= 2:
        return live + dead
    dist = 1.0 - unit_correlation(values[:, live])
    n = len(live)
    visited = torch.zeros(n, dtype=torch.bool)
    chain = [0]  # live[0] is the most variable unit
    visited[0] = True
    cur = 0
    for _ in range(n - 1):
        d = dist[cur].masked_fill(visited, math.inf)
        cur = int(torch.argmin(d))
        visited[cur] = True
        chain.append(cur)
    return [live[i] for i in chain] + dead


def _pattern_order(values: Tensor, var: Tensor) -> list[int]:
    """Angular seriation (see the module doc): (T, h) values, (h,) variances → unit order."""
    h = values.shape[1]
    live = [u for u in range(h) if float(var[u]) > 1e-12]
    dead = [u for u in range(h) if float(var[u]) <= 1e-12]
    if len(live) <= 2 or values.shape[0] < 2:
        return sorted(live, key=lambda u: (-float(var[u]), u)) + dead
    z = values[:, live].double()
    sd = z.std(dim=0, unbiased=False)
    z = (z - z.mean(dim=0)) / torch.where(sd > 0, sd, torch.ones_like(sd))
    # The two leading loadings: eigenvectors of zᵀz (n × n) with the largest eigenvalues, i.e. the
    # first two rows of the SVD's Vᵀ up to sign (a third of a full SVD's time at T = 1,000, n = 256).
    _, vecs = torch.linalg.eigh(z.T @ z)                         # ascending eigenvalues
    pc1, pc2 = vecs[:, -1], vecs[:, -2]
    pc1 = pc1 if float(pc1[pc1.abs().argmax()]) > 0 else -pc1     # a fixed sign: stable order
    pc2 = pc2 if float(pc2[pc2.abs().argmax()]) > 0 else -pc2
    angle = torch.atan2(pc2, pc1)
    # start the circle at the widest gap between neighbouring angles, so no band is split
    srt, idx = torch.sort(angle)
    gaps = torch.diff(torch.cat([srt, srt[:1] + 2 * math.pi]))
    cut = (int(torch.argmax(gaps)) + 1) % len(live)
    idx = torch.cat([idx[cut:], idx[:cut]])
    return [live[int(i)] for i in idx] + dead


# --------------------------------------------------------------------------- windows
def window_bounds(T: int, start: int, width: int) -> tuple[int, int]:
    """Clamp a window [start, start + width) into [0, T); returns (start, stop) with stop > start."""
    width = max(1, min(int(width), T))
    start = max(0, min(int(start), T - width))
    return start, start + width


def max_window(num_units: int, budget: int = HEATMAP_CELL_BUDGET, floor: int = 40) -> int:
    """The widest full-resolution window (in steps) for ``num_units`` rows within the cell budget."""
    return max(floor, budget // max(1, num_units))


def bucket_edges(T: int, buckets: int) -> list[int]:
    """Edges splitting T steps into min(T, buckets) contiguous, nearly equal buckets."""
    n = max(1, min(T, buckets))
    return [round(i * T / n) for i in range(n + 1)]


def downsample_steps(values: Tensor, buckets: int = OVERVIEW_MAX_COLUMNS) -> tuple[Tensor, list[int]]:
    """Mean over contiguous buckets of steps: (T, h) → (n, h) with n = min(T, buckets), and edges."""
    T = values.shape[0]
    edges = bucket_edges(T, buckets)
    if len(edges) - 1 == T:
        return values.clone(), edges
    csum = torch.cat([values.new_zeros(1, values.shape[1]), values.double().cumsum(0).to(values.dtype)])
    e = torch.tensor(edges)
    sums = csum[e[1:]] - csum[e[:-1]]
    return (sums / (e[1:] - e[:-1]).unsqueeze(1).to(values.dtype)), edges


def overview_units(order: Sequence[int], values: Tensor, max_rows: int = OVERVIEW_MAX_ROWS) -> list[int]:
    """The rows of the overview: every unit if few, else the most variable ones, kept in ``order``."""
    if len(order) <= max_rows:
        return list(order)
    var = unit_variance(values)
    keep = set(sorted(range(values.shape[1]), key=lambda u: (-float(var[u]), u))[:max_rows])
    return [u for u in order if u in keep]


# --------------------------------------------------------------------------- gates
def gate_names(trace: Trace, layer: int) -> list[str]:
    """Trace names of the gates of one layer: LSTM i, f, o; GRU z, r; none for a plain RNN."""
    names = (act_name(layer, f"gates.{g}") for g in spec(trace.cell).gate_view)
    return [n for n in names if n in trace]


def saturation(gate: Tensor, low: float = SAT_LOW, high: float = SAT_HIGH) -> dict:
    """Fraction of time a (T, h) gate is < low or > high: per unit and over all units and steps."""
    g = gate.double()
    lo, hi = (g < low).double(), (g > high).double()
    return {"low": float(lo.mean()), "high": float(hi.mean()), "saturated": float((lo + hi).mean()),
            "unit_low": lo.mean(0), "unit_high": hi.mean(0)}


def saturation_table(trace: Trace, layer: int) -> list[dict]:
    """One row per gate of a layer: gate, fraction < 0.1, fraction > 0.9, saturated, mean."""
    rows = []
    for name in gate_names(trace, layer):
        s = saturation(trace[name])
        rows.append({"gate": name.rsplit(".", 1)[-1], "name": name, f"< {SAT_LOW}": s["low"],
                     f"> {SAT_HIGH}": s["high"], "saturated": s["saturated"],
                     "mean": float(trace[name].double().mean())})
    return rows


# --------------------------------------------------------------------------- predictions
def topk(probs: Tensor, tokens: Sequence[str], k: int) -> tuple[list[list[str]], Tensor, Tensor]:
    """Top-k of each row of (T, V) probabilities: (chars k × T, probs (k, T), ids (k, T))."""
    k = max(1, min(int(k), probs.shape[1]))
    values, ids = probs.topk(k, dim=1)
    chars = [[tokens[int(i)] for i in ids[:, r]] for r in range(k)]
    return chars, values.T.contiguous(), ids.T.contiguous()


def next_char_probs(trace: Trace) -> list[float | None]:
    """P(chars[t+1] | chars[:t+1]) for each step t (None for the last step, which has no next)."""
    s = trace.surprisal
    return [float(torch.exp(-s[t])) for t in range(s.numel())] + [None]


def char_surprisal(trace: Trace) -> list[float | None]:
    """Surprisal (nats) of each character as it is read: None for t = 0 (nothing predicted it)."""
    return [None] + [float(x) for x in trace.surprisal]


def prediction_summary(trace: Trace) -> dict:
    """Cross-entropy (nats/char), perplexity, bits/char, predicted and unknown character counts."""
    return {"cross_entropy": trace.cross_entropy, "perplexity": trace.perplexity,
            "bits_per_char": trace.bits_per_char, "predicted": max(0, len(trace) - 1),
            "unknown": len(trace.unknown_positions)}


def unknown_chars(trace: Trace) -> list[tuple[int, str]]:
    """(step, character) of every character read as ``<unk>``."""
    return [(t, trace.chars[t]) for t in trace.unknown_positions]


# --------------------------------------------------------------------------- step-through
def _input_of(model: CharRNN, trace: Trace, layer: int, t: int) -> Tensor:
    if layer == 0:
        return model.one_hot(trace.ids[t:t + 1])[0]
    return trace[act_name(layer - 1, "h")][t]


@torch.inference_mode()
def step_terms(model: CharRNN, trace: Trace, layer: int, t: int) -> dict[str, Tensor]:
    """The textbook equation of one layer at step t, term by term, with the trace's vectors.

    Returns an ordered dict name → (h,) vector, recomputed from ``model.textbook_params(layer)``:

    the cell spec's ``step_view`` (rnnviz.cells), e.g.
    rnn:     "X_t W_xh", "H_{t-1} W_hh", "b_h", "pre-activation", "H_t"
    gru:     "R_t", "Z_t", "X_t W_xh + b_h", "H_{t-1} W_hh + b_hh", "H̃_t", "H_{t-1}", "H_t"
    gru_d2l: "R_t", "Z_t", "X_t W_xh + b_h", "(R_t ⊙ H_{t-1}) W_hh", "H̃_t", "H_{t-1}", "H_t"
    lstm:    "I_t", "F_t", "O_t", "C̃_t", "C_{t-1}", "C_t", "H_t"

    The initial state is zeros (as the page traces). ``H_t`` here equals ``trace["layer{l}.h"][t]``
    up to float rounding (the tests check it).
    """
    if not 0 <= t < len(trace):
        raise IndexError(f"step {t} out of range 0..{len(trace) - 1}")
    p = model.textbook_params(layer)
    x = _input_of(model, trace, layer, t)
    hs = trace[act_name(layer, "h")]
    h_prev = hs[t - 1] if t > 0 else torch.zeros_like(hs[0])
    c_prev = None
    if model.has_cell_state:
        cs = trace[act_name(layer, "c")]
        c_prev = cs[t - 1] if t > 0 else torch.zeros_like(cs[0])
    return model.spec.step_terms(p, x, h_prev, c_prev)


@torch.inference_mode()
def step_output(model: CharRNN, trace: Trace, t: int) -> dict[str, Tensor]:
    """O_t = H_t W_hq + b_q of the top layer at step t and its softmax (recomputed from the params)."""
    top = model.config.num_layers - 1
    p = model.textbook_params(top)
    h = trace[act_name(top, "h")][t]
    o = h @ p["W_hq"] + p["b_q"]
    return {"O_t": o, "softmax": torch.softmax(o, dim=-1)}


def top_units(vector: Tensor, n: int) -> list[int]:
    """Indices of the n largest |values| (all units, in order, when there are at most n)."""
    h = vector.numel()
    if h <= n:
        return list(range(h))
    idx = vector.abs().topk(n).indices.tolist()
    return sorted(idx, key=lambda u: (-abs(float(vector[u])), u))


#: Rows of a readable heatmap (lecture mode's default): every one labelled on a projector.
READABLE_ROWS = 32


def heatmap_rows(order: list[int], mode: str, variance: Tensor, named: list[int],
                 n: int = READABLE_ROWS) -> list[int]:
    """The units a state heatmap shows, in ``order``: ``"all"``; ``"top"``: the ``n`` of largest
    variance over the text; ``"named"``: the named and pinned units ``named`` (the top ``n`` when
    there are none). Named units are always kept in "top"."""
    if mode == "all":
        return list(order)
    keep = [u for u in named if 0 <= u < variance.numel()][:n]
    if mode == "top" or not keep:
        top = [int(u) for u in variance.topk(min(n, variance.numel())).indices]
        keep = keep + [u for u in top if u not in keep][: max(0, n - len(keep))]
    wanted = set(keep)
    return [u for u in order if u in wanted]


def pinned_first(units: list[int], pinned: int | None, n: int) -> list[int]:
    """``units`` with ``pinned`` moved (or added) to the front, at most ``n`` in all."""
    if pinned is None:
        return list(units)[:n]
    return ([pinned] + [u for u in units if u != pinned])[:n]


def top_predictions(probs: Tensor, n: int) -> list[int]:
    """Ids of the n most likely entries of a (|V|,) distribution, most likely first."""
    n = max(1, min(int(n), probs.numel()))
    return probs.topk(n).indices.tolist()


# --------------------------------------------------------------------------- export
def trace_frame(trace: Trace, *, include_probs: bool = False) -> "pandas.DataFrame":
    """The trace as one row per step: step, char, id, unknown, next char, P(next), surprisal, top-1
    prediction, then every per-unit tensor as ``<name>[<unit>]`` columns (and, with
    ``include_probs``, ``P(<char>)`` columns for the whole vocabulary)."""
    import numpy as np
    import pandas as pd

    T = len(trace)
    top = trace.probs.argmax(dim=1)
    base = {
        "step": np.arange(T),
        "char": trace.chars,
        "id": trace.ids.numpy(),
        "unknown": [t in set(trace.unknown_positions) for t in range(T)],
        "next_char": trace.chars[1:] + [""],
        "p_next": next_char_probs(trace),
        "surprisal_nats": [float(x) for x in trace.surprisal] + [None],
        "top_prediction": [trace.tokens[int(i)] for i in top],
        "p_top": trace.probs.max(dim=1).values.numpy(),
    }
    blocks = [pd.DataFrame(base)]
    for name in trace.names():
        tensor = trace[name]
        if layer_of(name) is not None and tensor.dim() == 2:
            cols = [f"{name}[{u}]" for u in range(tensor.shape[1])]
            blocks.append(pd.DataFrame(tensor.numpy(), columns=cols))
    if include_probs:
        cols = [f"P({tok})" for tok in trace.tokens]
        blocks.append(pd.DataFrame(trace.probs.numpy(), columns=cols))
    return pd.concat(blocks, axis=1)
