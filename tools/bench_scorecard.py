"""Benchmark rows for :func:`rnnviz.units.scorecard`: ``python -m tools.bench --only scorecard`` (not
in the default groups: it takes minutes) or ``python -m tools.bench_scorecard``. The scorecard of one
built-in feature on a shipped checkpoint's held-out scorecard slice, as the Units page runs it (at
most PAGE_MAX_CAUSAL units ablated),

* cold: the random-init control models and the 20 random ablations computed in the call;
* with cached controls: the checkpoint's ``<name>.scorecard.json`` sidecar (target ≤ 10 s on the
  2-core server, the issue's bound).

``quick``: timemachine-rnn only and one repeat.
"""

from __future__ import annotations

import time

from rnnviz.checkpoint import load_model, resolve_checkpoint
from rnnviz.units import scorecard
from rnnviz.units.scorecard_cache import PAGE_MAX_CAUSAL, load_controls, scorecard_sample

#: (checkpoint, feature) pairs measured.
CASES = (("python-lstm", "paren_depth"), ("timemachine-rnn", "whitespace"))


def _seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_scorecard(quick: bool = False) -> list[dict]:
    """One cold and one cached row per case (median of the repeats)."""
    rows = []
    for name, feature in CASES[1:] if quick else CASES:
        model = load_model(name)
        text, _ = scorecard_sample(model)
        cache = load_controls(resolve_checkpoint(name))
        reps = 1 if quick else 3
        for label, kw, target in (("cold", {}, None), ("cached controls", {"cache": cache}, 10.0)):
            if label != "cold" and cache is None:
                rows.append({"name": f"scorecard {name} {feature}: no sidecar", "ours_s": None,
                             "reference_s": None, "ratio": None, "target": None})
                continue
            s = _seconds(lambda: scorecard(model, text, [feature], max_causal=PAGE_MAX_CAUSAL, **kw), reps)
            rows.append({"name": f"scorecard {name} {feature} {len(text):,} chars, {label}", "ours_s": s,
                         "reference_s": None, "ratio": None, "target": target})
    return rows


if __name__ == "__main__":
    from tools.bench import format_rows

    print(format_rows(bench_scorecard()))
