"""Benchmark rows for :mod:`rnnviz.gradients` (imported and printed by ``python -m tools.bench``).

Rows (full sizes; ``quick`` shrinks them):

* norm curve, T=1000, H=512, every cell — *including* the trace it needs, and again from a trace
  already at hand (the backward pass alone) — against the fused torch forward of a same-size model
  measured in the same run (nn.GRU for the book's GRU; target ≤ 2×, issue #30);
* gradient map, T=500, H=256, per cell — absolute seconds (target ≤ 2 s), plus a few sizes showing
  how its cost grows with T and with H (no target: cost ≈ T²·h²);
* Jacobian chain, T=1000, H=256, every cell — absolute seconds (target ≤ 1 s, issue #30).
"""

from __future__ import annotations

import torch

from tools.bench import fused_reference, interleaved, median_time, random_text
from rnnviz.gradients import gradient_map, jacobian_chain, norm_curve
from rnnviz.model import CELLS, ModelConfig, build_model
from rnnviz.trace import trace

TOKENS = ("<unk>", *"abcdefghijklmnopqrstuvwxyz ")


def _text(length: int, seed: int = 0) -> str:
    return random_text(TOKENS, length, seed)


def _row(name: str, ours: float, ref: float | None, target: float | None) -> dict:
    return {"name": name, "ours_s": ours, "reference_s": ref,
            "ratio": ours / ref if ref else None, "target": target}


def _format(r: dict) -> str:
    ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
    ref = f"{r['reference_s']:.4f}" if r["reference_s"] is not None else "-"
    return f"{r['name']:<92} {r['ours_s']:9.4f} {ref:>9} {ratio:>7} {r['target']}"


class _Rows(list):
    """A list of rows that can echo each row as it is appended (long runs show progress)."""

    def __init__(self, echo: bool):
        super().__init__()
        self.echo = echo

    def append(self, r: dict) -> None:
        super().append(r)
        if self.echo:
            print(_format(r), flush=True)


def bench_gradients(quick: bool = False, *, echo: bool = False,
                    groups: tuple[str, ...] = ("curve", "map", "growth", "chain")) -> list[dict]:
    """Benchmark rows ``{"name", "ours_s", "reference_s", "ratio", "target"}`` (see module doc).

    echo: print each row as soon as it is measured. groups: a subset of the row groups.
    """
    rows: list[dict] = _Rows(echo)
    T, H, reps = (200, 128, 3) if quick else (1000, 512, 5)
    for cell in CELLS if "curve" in groups else ():
        model = build_model(ModelConfig(cell, H, 1, TOKENS), seed=0)
        text = _text(T)
        ids = model.vocab.encode(text).ids
        ref = fused_reference(model)
        # with the trace it needs, and the backward alone from a trace the caller already holds
        for label, source in (("incl. trace", text), ("from a given trace", trace(model, text))):
            ours, ref_s = interleaved(lambda: norm_curve(model, source, loss="last"), lambda: ref(ids), reps)
            rows.append(_row(f"norm curve ‖∂L/∂H_t‖ {label}, {cell} T={T} H={H} vs fused forward",
                             ours, ref_s, 2.0))

    T, H, reps = (100, 64, 1) if quick else (500, 256, 2)
    for cell in ("rnn_tanh", "gru", "lstm") if "map" in groups else ():
        model = build_model(ModelConfig(cell, H, 1, TOKENS), seed=0)
        text = _text(T)
        rows.append(_row(f"gradient map G[t,k] {cell} T={T} H={H} (absolute s)",
                         median_time(lambda: gradient_map(model, text), reps), None, 2.0))
    # growth with T and with H (vanilla RNN, one layer; no target — cost ≈ T²·h²)
    sizes_T = (50, 100) if quick else (125, 250, 500, 1000)
    sizes_H = (32, 64) if quick else (64, 128, 256, 512)
    if "growth" not in groups:
        sizes_T = sizes_H = ()
    H0, T0 = (64, 100) if quick else (256, 500)
    for t in sizes_T:
        model = build_model(ModelConfig("rnn_tanh", H0, 1, TOKENS), seed=0)
        text = _text(t)
        g = gradient_map(model, text)
        rows.append(_row(f"gradient map growth: rnn_tanh T={t} H={H0} ({len(g.loss_steps)} rows, "
                         f"stride {g.stride})", median_time(lambda: gradient_map(model, text), 1), None, None))
    for h in sizes_H:
        model = build_model(ModelConfig("rnn_tanh", h, 1, TOKENS), seed=0)
        text = _text(T0)
        g = gradient_map(model, text)
        rows.append(_row(f"gradient map growth: rnn_tanh T={T0} H={h} ({len(g.loss_steps)} rows, "
                         f"stride {g.stride})", median_time(lambda: gradient_map(model, text), 1), None, None))

    T, H, reps = (200, 64, 1) if quick else (1000, 256, 2)
    for cell, target in ((c, 1.0) for c in CELLS) if "chain" in groups else ():
        model = build_model(ModelConfig(cell, H, 1, TOKENS), seed=0)
        text = _text(T)
        rows.append(_row(f"Jacobian chain ‖∂H_T/∂H_t‖ 2-norm+F {cell} T={T} H={H} (absolute s)",
                         median_time(lambda: jacobian_chain(model, text), reps), None, target))
    return list(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", action="append", choices=("curve", "map", "growth", "chain"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    bench_gradients(args.quick, echo=True, groups=tuple(args.only or ("curve", "map", "growth", "chain")))
