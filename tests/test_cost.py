"""The cost model (rnnviz.serving.cost), cooperative deadlines (rnnviz.serving.deadline) and the heavy-work pool
(app_pages.ui.work): shipped models are never thinned at the page defaults, the largest model the
parser accepts is thinned or refused within the budget, and long loops stop at their deadline."""

from __future__ import annotations

import time

import pytest
import torch

import rnnviz
from rnnviz import CELLS, ModelConfig, Vocab
from rnnviz.serving import cost
from rnnviz import generate as gen
from rnnviz import gradients as G
from rnnviz import units as U
from rnnviz.serving.deadline import Overtime, check, deadline
from rnnviz.model import MAX_HIDDEN, MAX_LAYERS

from .conftest import tiny_model

TOKENS = tuple(Vocab.from_text("the time machine by h. g. wells").tokens)
#: (operation, characters the page asks for by default)
PAGE_DEFAULTS = [("trace", 5_000), ("norm_curve", 200), ("chain", 401), ("spectrum", 1), ("gmap", 200),
                 ("index", U.SAMPLE_CHARS), ("generate", 260), ("forward2", 5_000), ("presets", 200)]


def test_shipped_checkpoints_are_never_thinned_at_the_page_defaults():
    for info in rnnviz.list_checkpoints():
        for op, steps in PAGE_DEFAULTS:
            plan = cost.fit(op, info.config, steps)
            assert not plan.reduced and plan.note is None, (info.name, op, plan)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, MAX_LAYERS])
def test_the_budget_holds_for_the_largest_model_the_parser_accepts(cell, layers):
    cfg = ModelConfig(cell, MAX_HIDDEN, layers, TOKENS)     # over the file cap, but its config is legal
    for op, steps in PAGE_DEFAULTS:
        try:
            plan = cost.fit(op, cfg, steps)
        except cost.CostError as err:
            assert "Not computed" in str(err) and "budget" in str(err)
            continue
        assert plan.seconds <= cost.op_budget(op) + 1e-9, (op, plan)
        if plan.reduced:
            assert plan.note.startswith("Reduced because") and f"{plan.steps:,} characters" in plan.note


def test_budget_is_an_argument_the_app_reads_from_its_settings(monkeypatch):
    from app_pages.ui.settings import Settings, SettingsError, settings
    assert cost.op_budget("index") == 10 * cost.REQUEST_SECONDS
    assert cost.op_budget("index", 0.5) == 5.0 and cost.deadline_seconds("", 0.5) == 2.0
    monkeypatch.setenv("RNNVIZ_REQUEST_SECONDS", "0.5")
    assert cost.op_budget("index") == 10 * cost.REQUEST_SECONDS     # the library ignores it
    settings.cache_clear()
    assert settings().request_seconds == 0.5
    for bad in ("nan", "-1", "0", "1e308", "x"):
        with pytest.raises(SettingsError, match=f"RNNVIZ_REQUEST_SECONDS='{bad}'"):
            Settings.from_environ({"RNNVIZ_REQUEST_SECONDS": bad})


def test_check_is_free_without_a_deadline_and_raises_after_it():
    check()
    with pytest.raises(Overtime) as info:
        with deadline(0.01):
            t0 = time.thread_time()
            while time.thread_time() - t0 < 0.02:            # 20 ms of this thread's CPU time
                pass
            check()
    assert info.value.seconds == 0.01 and "0.0 s time budget" in str(info.value)
    check()                                                 # the deadline ended with its block


@pytest.mark.parametrize("work", [
    lambda m, text: G.gradient_map(m, text),
    lambda m, text: G.jacobian_chain(m, text),
    lambda m, text: gen.generate(m, "the", 50),
    lambda m, text: U.ablate(m, text, 0, 0),
    lambda m, text: U.build_index(m, text),
], ids=["gradient_map", "jacobian_chain", "generate", "ablate", "unit_index"])
def test_backend_loops_stop_at_the_deadline(work):
    model = tiny_model("lstm", 2, 8)
    text = "the time machine by h. g. wells " * 8
    with pytest.raises(Overtime):
        with deadline(0.0):
            work(model, text)
    work(model, text)                                       # and run to the end without one


def test_run_heavy_stops_an_overrunning_request_and_keeps_serving(monkeypatch):
    from app_pages.ui import work

    monkeypatch.setenv("RNNVIZ_REQUEST_SECONDS", "0.1")     # deadline: max(1 s, 4 × 0.1 s)

    def spin():
        while True:
            check()
            time.sleep(0.01)

    t0 = time.perf_counter()
    with pytest.raises(Overtime):
        work.run_heavy("trace", spin)            # sleeps: stopped by the wall-clock cap (3 × 1 s)
    assert time.perf_counter() - t0 < 3 * 1.0 + 1.5
    assert work.run_heavy("trace", torch.add, torch.ones(2), 1).tolist() == [2.0, 2.0]
    with pytest.raises(ZeroDivisionError):                  # a bug is never hidden
        work.run_heavy("trace", lambda: 1 / 0)


def _prefetch_script(log_path: str, fail: bool) -> None:
    import time

    import streamlit as st

    from app_pages.ui.work import cached_heavy, prefetch

    def slow(x: int) -> int:
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write("computed\n")
        time.sleep(0.5)
        if fail:
            raise ValueError("refused")
        return 2 * x

    def cached(x: int) -> int:
        return cached_heavy("trace", slow, (log_path, x), x)

    t0 = time.perf_counter()
    prefetch(cached, 21)
    time.sleep(0.4)                       # the page draws something else meanwhile
    try:
        st.write(f"value {cached(21)} after {time.perf_counter() - t0:.2f} s")
    except ValueError as err:
        st.write(f"error {err}")


@pytest.mark.parametrize("fail", [False, True])
def test_prefetch_overlaps_and_computes_once(tmp_path, fail):
    """A prefetched cached_heavy call runs beside the script (a plain thread: no Streamlit there);
    the script's own call waits for it and reads its value (computed once). A failed prefetch is not
    kept: the script's call computes again and gets the error itself."""
    from streamlit.testing.v1 import AppTest

    log = tmp_path / "calls.log"
    at = AppTest.from_function(_prefetch_script, args=(str(log), fail), default_timeout=300).run()
    assert not at.exception
    shown = at.markdown[0].value
    calls = log.read_text().count("computed")
    if fail:
        assert shown == "error refused" and calls == 2
    else:
        assert shown.startswith("value 42 after ") and calls == 1
        assert float(shown.split()[3]) < 0.85          # overlapped: 0.5 s, not 0.4 + 0.5 s


def test_cached_heavy_keeps_one_value_per_function_and_key():
    """cached_heavy: the same (function, key) is computed once and shared (the same object, not a
    copy); another key or another function with the same key is computed anew; a failure is not kept."""
    from app_pages.ui.work import cached_heavy

    calls = []

    def double(x):
        calls.append(("double", x))
        return [2 * x]

    def triple(x):
        calls.append(("triple", x))
        return [3 * x]

    key = ("test_cached_heavy", object())          # unique to this test run
    first = cached_heavy("trace", double, key, 5)
    assert first == [10] and cached_heavy("trace", double, key, 5) is first
    assert cached_heavy("trace", double, key + (1,), 6) == [12]
    assert cached_heavy("trace", triple, key, 5) == [15]
    assert calls == [("double", 5), ("double", 6), ("triple", 5)]

    def boom():
        calls.append("boom")
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            cached_heavy("trace", boom, key)
    assert calls.count("boom") == 2
