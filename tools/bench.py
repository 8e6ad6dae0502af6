"""Benchmarks: every row times one of our operations against a reference measured in the same run.

    python -m tools.bench                 # all rows (trace, gradients, training; page, page-views if --page)
    python -m tools.bench --only trace    # one group
    python -m tools.bench --quick         # smaller sizes, fewer repeats (a smoke run)

Each row: ``name``, ``ours_s`` (median seconds), ``reference_s`` (median seconds of the reference,
or None for an absolute target), ``ratio`` = ours / reference, and ``target`` (the ratio, or seconds
when there is no reference). Timings are medians over interleaved repeats on ``--threads`` threads
(2 by default, the size of our CI machines).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from rnnviz.model import CELLS, ModelConfig, build_model
from rnnviz.trace import trace

Row = dict


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(ours: Callable[[], object], ref: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``ref``, alternating runs so load drifts hit both alike."""
    ours(), ref()
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((ours, a), (ref, b)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def row(name: str, ours_s: float, reference_s: float | None, target: float) -> Row:
    ratio = ours_s / reference_s if reference_s else None
    return {"name": name, "ours_s": ours_s, "reference_s": reference_s, "ratio": ratio, "target": target}


def random_text(vocab_tokens: tuple[str, ...], length: int, seed: int = 0) -> str:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(1, len(vocab_tokens), (length,), generator=g)
    return "".join(vocab_tokens[i] for i in idx.tolist())


def fused_reference(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """A plain fused torch.nn forward of the same size: one multi-layer nn.RNN/GRU/LSTM + Linear +
    softmax (the cell's PyTorch module; nn.GRU for the book's GRU, which has none)."""
    cfg = model.config
    V, H, L = cfg.vocab_size, cfg.hidden_size, cfg.num_layers
    rnn = (model.spec.torch_class or nn.GRU)(V, H, L, **model.spec.torch_kwargs)
    lin = nn.Linear(H, V)
    rnn.eval(), lin.eval()

    @torch.inference_mode()
    def forward(ids: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.one_hot(ids, V).float()
        out, _ = rnn(x)
        return torch.softmax(lin(out), dim=-1)

    return forward


def bench_trace(quick: bool = False) -> list[Row]:
    """Trace vs the fused forward (+ Linear + softmax), per cell type, T=1000, H=512, and the full
    LSTM and book's-GRU traces at H=256 (quick: T=200, H=128). The book's GRU has no fused
    module: its rows compare its compiled loop with nn.GRU (the full trace's target is 1.5×)."""
    T, H, reps = (200, 128, 3) if quick else (1000, 512, 9)
    sizes = [(cell, H) for cell in CELLS] + ([] if quick else [("lstm", 256), ("gru_d2l", 256)])
    tokens = ("<unk>", *"abcdefghijklmnopqrstuvwxyz ")
    rows = []
    for cell, h in sizes:
        model = build_model(ModelConfig(cell, h, 1, tokens), seed=0)
        text = random_text(tokens, T)
        ids = model.vocab.encode(text).ids
        ref = fused_reference(model)
        fused = model.spec.torch_class is not None
        vs = "vs fused forward" if fused else "vs fused nn.GRU (no fused form exists)"
        if h == H:
            lite, ref_s = interleaved(lambda: trace(model, text, gates=False), lambda: ref(ids), reps)
            rows.append(row(f"trace states+probs+surprisal {cell} T={T} H={h} {vs}", lite, ref_s,
                            1.25 if fused else None))
        full, ref_s2 = interleaved(lambda: trace(model, text), lambda: ref(ids), reps)
        # the book's GRU too (issue 30): its compiled loop against nn.GRU, the nearest fused form
        rows.append(row(f"trace full (gates, C_t) {cell} T={T} H={h} {vs}", full, ref_s2, 1.5))
    return rows


def _optional(group: str, quick: bool) -> list[Row]:
    """Rows contributed by other modules (each owns its benchmark)."""
    import importlib
    module_name, fn_name = {"gradients": ("tools.bench_gradients", "bench_gradients"),
                            "training": ("tools.bench_train", "bench_training"),
                            "page": ("tools.bench_page", "bench_page"),
                            "page-views": ("tools.bench_page_views", "bench_page_views"),
                            "scorecard": ("tools.bench_scorecard", "bench_scorecard")}[group]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return [{"name": f"{group}: not available ({err})", "ours_s": None, "reference_s": None,
                 "ratio": None, "target": None}]
    return getattr(module, fn_name)(quick=quick)


GROUPS = ("trace", "gradients", "training", "page", "page-views", "scorecard")


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'benchmark':<78} {'ours s':>9} {'ref s':>9} {'ratio':>7} {'target':>8}  ok"]
    for r in rows:
        ours = f"{r['ours_s']:.4f}" if r.get("ours_s") is not None else "-"
        ref = f"{r['reference_s']:.4f}" if r.get("reference_s") is not None else "-"
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
        target = r.get("target")
        if target is None:
            tgt, ok = "-", ""
        elif r.get("reference_s") is not None:
            tgt = f"≤{target:g}x" if not r.get("higher_is_better") else f"≥{target:g}x"
            ok = ("yes" if (r["ratio"] >= target if r.get("higher_is_better") else r["ratio"] <= target)
                  else "NO")
        else:
            tgt = f"≤{target:g}s"
            ok = "yes" if r["ours_s"] is not None and r["ours_s"] <= target else "NO"
        lines.append(f"{r['name'][:78]:<78} {ours:>9} {ref:>9} {ratio:>7} {tgt:>8}  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=GROUPS, action="append", help="run only these groups")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--page", action="store_true", help="include the headless-Chromium page benchmark")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    groups = args.only or [g for g in GROUPS if (not g.startswith("page") or args.page) and g != "scorecard"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows: list[Row] = []
    for group in groups:
        got = bench_trace(args.quick) if group == "trace" else _optional(group, args.quick)
        print(format_rows(got), flush=True)
        rows += got


if __name__ == "__main__":
    main()
