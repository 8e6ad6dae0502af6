"""Smoke test of the gradient benchmark (no timing assertions: speed is reported by
``python -m tools.bench_gradients``, not asserted here). It must run and time every row it promises.
"""

from __future__ import annotations

import math
import os

from rnnviz.model import CELLS
from tools.bench_gradients import bench_gradients


def test_norm_curve_rows_run():
    rows = bench_gradients(quick=True, groups=("curve",))
    names = [r["name"] for r in rows]
    for cell in CELLS:                               # every cell, the book's GRU too (issue #30)
        assert sum(f", {cell} T=" in n and "vs fused forward" in n for n in names) == 2
    for r in rows:
        assert r["ours_s"] > 0 and r["reference_s"] > 0 and math.isfinite(r["ratio"])


def test_page_view_rows_are_medians_of_inplace_against_the_baseline():
    from tools.bench_page_views import TEXT_CPU_TARGET_S, TEXT_TIME_TARGET_S, medians, view_rows

    # (seconds, browser CPU-s, server CPU-s) per update; medians by hand: in-place text 0.8 s, 0.5 CPU-s
    results = {("predictions", "inplace", "text"): [(0.8, 0.5, 0.2), (0.7, 0.6, 0.2), (2.0, 0.4, 0.3)],
               ("predictions", "baseline", "text"): [(1.0, 1.0, 0.2), (1.2, 0.9, 0.2), (0.9, 1.1, 0.2)],
               ("predictions", "inplace", "switch"): [(1.5, 2.0, 0.1)],
               ("predictions", "baseline", "switch"): [(1.0, 1.0, 0.1)]}
    assert medians(results)[("predictions", "inplace", "text")] == (0.8, 0.5, 0.2, 3)
    rows = {r["name"]: r for r in view_rows(results, 1_000, 256)}
    assert len(rows) == 6
    time_vs = next(r for n, r in rows.items() if n.startswith("page predictions text: seconds, in-place /"))
    assert (time_vs["ours_s"], time_vs["reference_s"], time_vs["target"]) == (0.8, 1.0, 1.0)
    assert math.isclose(time_vs["ratio"], 0.8)
    cpu_abs = next(r for n, r in rows.items() if n.startswith("page predictions text: browser CPU-s, in-place, issue"))
    assert (cpu_abs["ours_s"], cpu_abs["reference_s"], cpu_abs["target"]) == (0.5, None, TEXT_CPU_TARGET_S)
    time_abs = next(r for n, r in rows.items() if n.startswith("page predictions text: seconds, in-place, issue"))
    assert time_abs["target"] == TEXT_TIME_TARGET_S
    switch_cpu = next(r for n, r in rows.items() if n.startswith("page predictions switch: browser CPU-s"))
    assert switch_cpu["ratio"] == 2.0  # a view switch has no absolute target, only the comparison
    assert not any(n.startswith("page predictions switch") and "issue" in n for n in rows)


def test_pin_tree_moves_every_thread_of_a_process_and_its_children():
    """The page benchmark's --pin (server on one core, browser on another) rests on this: every
    thread of the process and of its child, already running, ends up on the core asked for."""
    import subprocess
    import sys
    import time

    from tools.procstats import descendants, pin_tree

    core = max(os.sched_getaffinity(0))
    code = ("import subprocess, sys, threading, time; "
            "threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not descendants(proc.pid):
            time.sleep(0.05)
        pids = [proc.pid, *descendants(proc.pid)]
        assert len(pids) == 2
        pin_tree(proc.pid, {core})
        tasks = [(p, t) for p in pids for t in os.listdir(f"/proc/{p}/task")]
        assert len(tasks) >= 3                       # main thread, its thread, the child
        assert all(os.sched_getaffinity(int(t)) == {core} for _, t in tasks)
    finally:
        for p in [*descendants(proc.pid)]:
            os.kill(p, 9)
        proc.kill()
        proc.wait()


def test_replica_cpus_pin_the_replicas_and_move_the_driver_off_them():
    """tools/replicas.py --replica-cpus: the replicas' threads on the CPUs asked for; the driver (and
    so the balancer and load clients it starts next) on the others, or on all when none is left;
    a run gives the driver its CPUs back (measure's finally)."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from tools.replicas import pin_cpus

    every = os.sched_getaffinity(0)
    core = max(every)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pin_cpus([SimpleNamespace(proc=proc)], {core}, every)
        assert os.sched_getaffinity(proc.pid) == {core}
        assert os.sched_getaffinity(0) == ((every - {core}) or every)
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                               capture_output=True, text=True, check=True)
        assert child.stdout.strip() == str(sorted((every - {core}) or every))
    finally:
        os.sched_setaffinity(0, every)
        proc.kill()
        proc.wait()
