"""Benchmark rows for :func:`rnnviz.units.scorecard`: ``python -m tools.bench --only scorecard`` (not
in the default groups: it takes minutes) or ``python -m tools.bench_scorecard``. The scorecard of one
built-in feature on a shipped checkpoint's held-out scorecard slice, as the Units page runs it (at
most PAGE_MAX_CAUSAL units ablated),

* cold: the random-init control models and the 20 random ablations computed in the call;
* with cached controls: the checkpoint's ``<name>.scorecard.json`` sidecar (target ≤ 10 s on the
  2-core server, the issue's bound).

``quick``: timemachine-rnn only and one repeat; ``--repeats N`` (the command) sets the repeats
(default 3, the median is reported); each row is printed as it is measured, with the load average.
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


def bench_scorecard(quick: bool = False, on_row=None, repeats: int | None = None) -> list[dict]:
    """One cold and one cached row per case (median of the repeats); ``on_row(row)`` as each is
    measured (the command prints them as they come: a cold row under load takes minutes)."""
    rows = []
    for name, feature in CASES[1:] if quick else CASES:
        model = load_model(name)
        text, _ = scorecard_sample(model)
        cache = load_controls(resolve_checkpoint(name))
        reps = repeats or (1 if quick else 3)
        for label, kw, target in (("cold", {}, None), ("cached controls", {"cache": cache}, 10.0)):
            if label != "cold" and cache is None:
                rows.append({"name": f"scorecard {name} {feature}: no sidecar", "ours_s": None,
                             "reference_s": None, "ratio": None, "target": None})
                continue
            s = _seconds(lambda: scorecard(model, text, [feature], max_causal=PAGE_MAX_CAUSAL, **kw), reps)
            rows.append({"name": f"scorecard {name} {feature} {len(text):,} chars, {label}", "ours_s": s,
                         "reference_s": None, "ratio": None, "target": target})
            if on_row is not None:
                on_row(rows[-1])
    return rows


if __name__ == "__main__":
    from tools.bench import format_rows

    import os
    import sys

    reps = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else None
    rows = bench_scorecard(repeats=reps, on_row=lambda r: print(f"{r['name']}: {r['ours_s']:.1f} s, load average "
                                                  f"{os.getloadavg()[0]:.1f}", flush=True))
    print(format_rows(rows))
