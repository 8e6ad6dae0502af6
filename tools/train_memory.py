"""Peak RSS of the training pool with N concurrent distinct runs (the Train view's memory bound).

    python -m tools.train_memory [--runs 10] [--seconds 20] [--hidden 128] [--corpus timemachine]

Submits ``runs`` runs differing only in seed, with as many workers as runs (all train at once, one
torch thread each), lets them train for ``seconds``, and prints the process's peak RSS
(``ru_maxrss``) before and after, and per run. Run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from rnnviz.corpora import load_corpus
from rnnviz.training.limits import TrainLimits
from rnnviz.training.pool import TrainingPool, run_config


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(runs: int = 10, seconds: float = 20.0, hidden: int = 128, corpus: str = "timemachine") -> dict:
    """{"runs", "baseline_mb", "peak_mb", "per_run_mb", "steps"} after ``seconds`` of ``runs`` runs."""
    torch.set_num_threads(1)
    text = load_corpus(corpus).text
    base = peak_rss_mb()
    pool = TrainingPool(workers=runs, limits=TrainLimits(max_seconds=seconds), max_runs=runs)
    ids = [pool.submit(f"s{i}", text, run_config(hidden=hidden, seed=i, max_steps=0, max_seconds=seconds,
                                                 preprocessing="d2l", corpus=corpus))
           for i in range(runs)]
    while any(pool.snapshot(r, f"s{i}").status in ("queued", "running") for i, r in enumerate(ids)):
        time.sleep(0.5)
    steps = [pool.snapshot(r, f"s{i}").step for i, r in enumerate(ids)]
    pool.close()
    peak = peak_rss_mb()
    return {"runs": runs, "baseline_mb": base, "peak_mb": peak, "per_run_mb": (peak - base) / runs,
            "steps": steps}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--corpus", default="timemachine")
    r = measure(**vars(ap.parse_args()))
    print(f"{r['runs']} concurrent runs: peak RSS {r['peak_mb']:.0f} MB (baseline {r['baseline_mb']:.0f} MB, "
          f"{r['per_run_mb']:.1f} MB per run); steps {r['steps']}")
