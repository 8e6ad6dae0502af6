"""The cost model against the clock: for every operation ``rnnviz.serving.cost`` prices, the
estimate the app plans with next to the measured seconds of the backend call it stands for.

    python -m tools.bench_cost [--quick]

Operations (the name the app passes → the call that is timed, on text of T characters):

* trace → ``rnnviz.trace``; forward2 → ``rnnviz.units.ablate`` (two step-by-step forwards);
* generate → ``rnnviz.generate`` of T characters after a short prefix (priced as the app does:
  the prefix as a trace, each generated character as one generation step);
* index → ``rnnviz.units.index.build_index`` (the sample cut to ``index_capacity``);
* norm_curve → ``rnnviz.gradients.norm_curve`` in float64; presets → the Lesson's three curves;
* gmap → ``rnnviz.gradients.gradient_map`` with the page's multiply–add cap, priced as its
  per-step part plus the planned rows at ``GMAP_MACS_PER_SECOND``;
* chain → ``rnnviz.gradients.jacobian_chain`` back at most the page's 400 steps;
* spectrum → ``rnnviz.gradients.whh_spectrum`` (no T);
* unit_order → ``rnnviz.views.unit_order`` (variance / clustered / pattern) of layer 0's states,
  priced by ``cost.order_seconds``; pca → ``rnnviz.units.projection.project_trace``, priced as
  ``check_pca`` does.

Models are ``build_model(ModelConfig(cell, h, 1, tokens), seed=0)`` with tokens ``<unk>`` plus
|V| − 1 CJK characters, the text is random tokens. One torch thread; each measurement is the
median CPU time (of the process) and wall time of 3 calls after a warm-up call (1 call when the
warm-up took over the grid's cap; a point whose estimate is over the cap is skipped and listed).
The ratio is CPU seconds / estimate, since CPU time is what the deadline counts and what a busy
machine leaves nearly unchanged (the wall time is printed beside it). A row is ok when
1/3 ≤ ratio ≤ 3. Operations that do not depend on |V| (spectrum, unit orders, PCA)
run at the smallest |V| only, the spectrum at the smallest T only, and the gradient operations at
h ≤ ``heavy_max_h``. The exit code is 0 whatever the ratios: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from rnnviz import ModelConfig, build_model, trace
from rnnviz import gradients as G
from rnnviz import views
from rnnviz.generate import generate
from rnnviz.lesson.exercises import measure_gradient_presets
from rnnviz.serving import cost
from rnnviz.serving.threads import one_thread
from rnnviz.units.ablation import ablate
from rnnviz.units.index import build_index, index_capacity
from rnnviz.units.projection import project_trace

#: The Generate view's prefix in this benchmark (characters read before generating).
PREFIX_CHARS = 20
#: The Gradients page's limits (app_pages/gradients.py): chain steps back, share of the map cap.
CHAIN_MAX_BACK = 400
MAP_PAGE_MACS = G.MAP_MAX_MACS / 4
#: A row is ok when the measured / estimated ratio lies within [1/WITHIN, WITHIN].
WITHIN = 3.0


@dataclass(frozen=True)
class Grid:
    """The points measured: every cell × h × |V| × T (see the module doc for what is left out)."""

    cells: tuple[str, ...]
    hidden: tuple[int, ...]
    vocab: tuple[int, ...]
    steps: tuple[int, ...]
    heavy_max_h: int
    cap: float          # seconds: skip points estimated above it, time once when the warm-up is


FULL = Grid(("rnn_tanh", "gru", "lstm"), (64, 256, 1024), (64, 8000), (200, 1000), 256, 20.0)
QUICK = Grid(("rnn_tanh", "lstm"), (64, 256), (64, 8000), (100,), 64, 0.25)

#: (estimate in seconds, the call to time), from a model and a text.
Prepared = tuple[float, Callable[[], object]]


def _trace(model, text: str) -> Prepared:
    return cost.estimate("trace", model.config, len(text)), lambda: trace(model, text)


def _forward2(model, text: str) -> Prepared:
    return cost.estimate("forward2", model.config, len(text)), lambda: ablate(model, text, 0, 0)


def _generate(model, text: str) -> Prepared:
    cfg, prefix, n = model.config, text[:PREFIX_CHARS], len(text)
    est = cost.estimate("trace", cfg, len(prefix)) + cost.estimate("generate", cfg, n)
    return est, lambda: generate(model, prefix, n, seed=0)


def _index(model, text: str) -> Prepared:
    steps = index_capacity(model, len(text))
    return (cost.estimate("index", model.config, steps),
            lambda: build_index(model, text, max_chars=len(text)))


def _norm_curve(model, text: str) -> Prepared:
    return (cost.estimate("norm_curve", model.config, len(text)),
            lambda: G.norm_curve(model, text, dtype=torch.float64))


def _presets(model, text: str) -> Prepared:
    return (cost.estimate("presets", model.config, len(text)),
            lambda: measure_gradient_presets(model, text, max_chars=len(text)))


def _gmap(model, text: str) -> Prepared:
    """The page's call: the per-step part priced by ``estimate``, the rows' backward by their
    planned multiply–adds (capped as the page caps them)."""
    cfg, T = model.config, len(text)
    per_step = cost.estimate("gmap", cfg, T)
    plan = cost.Plan("gradient map", T, T, per_step, per_step, cost.op_budget("gmap"))
    max_macs = min(MAP_PAGE_MACS, cost.gmap_max_macs(plan))
    _, _, macs = G.plan_map_rows(T, cfg.hidden_size, cfg.num_layers, cfg.cell, None, max_macs)
    return (per_step + macs / cost.GMAP_MACS_PER_SECOND,
            lambda: G.gradient_map(model, text, max_macs=max_macs))


def _chain(model, text: str) -> Prepared:
    back = min(len(text), CHAIN_MAX_BACK + 1)
    return (cost.estimate("chain", model.config, back),
            lambda: G.jacobian_chain(model, text, layer=0, max_distance=max(back - 1, 1)))


def _spectrum(model, text: str) -> Prepared:
    return cost.estimate("spectrum", model.config, 1), lambda: G.whh_spectrum(model)


def _order(method: str) -> Callable[[object, str], Prepared]:
    def prepare(model, text: str) -> Prepared:
        values = trace(model, text, gates=False)["layer0.h"]
        T, h = values.shape
        return cost.order_seconds(method, T, h), lambda: views.unit_order(values, method)
    return prepare


def _pca(model, text: str) -> Prepared:
    tr = trace(model, text, gates=False)
    T, h = len(text), model.config.hidden_size
    return (cost.SVD_SECONDS * T * h * min(T, h),
            lambda: project_trace(tr, ("layer0.h",), k=2))


@dataclass(frozen=True)
class Op:
    """One priced operation: its row name, how to prepare it, and which axes it depends on."""

    name: str
    prepare: Callable[[object, str], Prepared]
    vocab: bool = True      # depends on |V| (else: smallest |V| only)
    steps: bool = True      # depends on T (else: smallest T only)
    heavy: bool = False     # gradient work: h ≤ grid.heavy_max_h only


OPS = (
    Op("trace", _trace),
    Op("forward2", _forward2),
    Op("generate", _generate),
    Op("index", _index),
    Op("norm_curve", _norm_curve, heavy=True),
    Op("presets", _presets, heavy=True),
    Op("gmap", _gmap, heavy=True),
    Op("chain", _chain, heavy=True),
    Op("spectrum", _spectrum, vocab=False, steps=False),
    Op("unit_order variance", _order("variance"), vocab=False),
    Op("unit_order clustered", _order("clustered"), vocab=False),
    Op("unit_order pattern", _order("pattern"), vocab=False),
    Op("pca", _pca, vocab=False),
)


def tokens(V: int) -> tuple[str, ...]:
    """``<unk>`` and V − 1 CJK characters (a large vocabulary with no preprocessing surprises)."""
    return ("<unk>", *(chr(0x4E00 + i) for i in range(V - 1)))


def random_text(V: int, T: int, seed: int = 0) -> str:
    """T tokens drawn uniformly (never ``<unk>``) from their own generator."""
    toks = tokens(V)
    idx = torch.randint(1, max(V, 2), (T,), generator=torch.Generator().manual_seed(seed))
    return "".join(toks[min(i, V - 1)] for i in idx.tolist())


def measure(call: Callable[[], object], cap: float) -> tuple[float, float, int]:
    """(median wall seconds, median process CPU seconds, calls timed) after one warm-up call: 3
    calls, or 1 when the warm-up took over ``cap`` seconds."""
    def timed() -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        call()
        return time.perf_counter() - w, time.process_time() - c

    if timed()[0] > cap:            # the warm-up (one-time compiles included) was slow: time one call
        wall, cpu = timed()
        return wall, cpu, 1
    runs = [timed() for _ in range(3)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), 3


def points(grid: Grid, op: Op) -> list[tuple[str, int, int, int]]:
    """The (cell, h, |V|, T) points of ``grid`` that ``op`` is measured at."""
    vocab = grid.vocab if op.vocab else grid.vocab[:1]
    steps = grid.steps if op.steps else grid.steps[:1]
    hidden = [h for h in grid.hidden if not op.heavy or h <= grid.heavy_max_h]
    return [(c, h, V, T) for c in grid.cells for h in hidden for V in vocab for T in steps]


def bench_cost(grid: Grid, ops: tuple[Op, ...] = OPS, *, echo: bool = False) -> tuple[list[dict], list[str]]:
    """Rows {op, cell, h, V, T, estimate_s, measured_s, cpu_s, runs, ratio, ok} for every point of
    ``grid`` and every op in ``ops``, and the points skipped (with why). Runs on one torch thread
    (the previous setting is restored afterwards)."""
    models: dict[tuple[str, int, int], object] = {}
    rows: list[dict] = []
    skipped: list[str] = []
    with one_thread():
        for op in ops:
            for cell, h, V, T in points(grid, op):
                if (cell, h, V) not in models:
                    models[cell, h, V] = build_model(ModelConfig(cell, h, 1, tokens(V)), seed=0)
                row = bench_point(op, models[cell, h, V], T, grid.cap)
                if isinstance(row, str):
                    skipped.append(row)
                    continue
                rows.append(row)
                if echo:
                    print(format_row(row), flush=True)
    return rows, skipped


def bench_point(op: Op, model, T: int, cap: float) -> dict | str:
    """One row of ``op`` on ``model`` over T random characters, or why the point is skipped."""
    cfg = model.config
    where = f"{op.name} {cfg.cell} h={cfg.hidden_size} |V|={cfg.vocab_size} T={T}"
    try:
        est, call = op.prepare(model, random_text(cfg.vocab_size, T))
    except (ValueError, cost.CostError) as err:     # e.g. over a library cap
        return f"{where}: {err}"
    if est > cap:
        return f"{where}: estimated {est:.3g} s, over the {cap:g} s cap"
    wall, cpu, runs = measure(call, cap)
    ratio = cpu / est if est > 0 else float("inf")
    return {"op": op.name, "cell": cfg.cell, "h": cfg.hidden_size, "V": cfg.vocab_size, "T": T,
            "estimate_s": est, "measured_s": wall, "cpu_s": cpu, "runs": runs, "ratio": ratio,
            "ok": 1 / WITHIN <= ratio <= WITHIN}


HEADER = (f"{'op':<22} {'cell':<9} {'h':>5} {'|V|':>5} {'T':>5} {'estimate s':>11} "
          f"{'wall s':>11} {'cpu s':>9} {'n':>2} {'cpu/est':>7} ok")


def format_row(r: dict) -> str:
    return (f"{r['op']:<22} {r['cell']:<9} {r['h']:>5} {r['V']:>5} {r['T']:>5} {r['estimate_s']:>11.4g} "
            f"{r['measured_s']:>11.4g} {r['cpu_s']:>9.4g} {r['runs']:>2} {r['ratio']:>7.3g} "
            f"{'yes' if r['ok'] else 'NO'}")


def summary(rows: list[dict]) -> str:
    ok = sum(r["ok"] for r in rows)
    return f"{ok} of {len(rows)} within {WITHIN:g}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced grid (under a minute)")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    print(HEADER, flush=True)
    rows, skipped = bench_cost(grid, echo=True)
    for s in skipped:
        print("skipped:", s)
    by_op: dict[str, list[dict]] = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    for name, rs in by_op.items():
        ratios = [r["ratio"] for r in rs]
        print(f"{name:<22} ratio min {min(ratios):.3g} median {statistics.median(ratios):.3g} "
              f"max {max(ratios):.3g}  ({summary(rs)})")
    print(f"{summary(rows)} ({len(skipped)} points skipped, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
