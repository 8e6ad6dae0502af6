"""rnnviz.serving.cache.ByteLRU: the byte-bounded LRU the app shares traces through (issue 7)."""

from __future__ import annotations

import random
import threading

import pytest
import torch

import rnnviz
from rnnviz.serving.cache import ByteLRU, nbytes


def _blob(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.uint8)


def test_evicts_least_recently_used_until_under_the_byte_budget():
    store = ByteLRU(max_bytes=1000, sizeof=lambda t: t.numel())
    for k in "abc":
        store.get_or_compute(k, lambda: _blob(300))
    assert store.bytes == 900 and len(store) == 3
    store.get_or_compute("a", lambda: pytest.fail("a is cached"))    # a becomes most recent
    store.get_or_compute("d", lambda: _blob(300))                    # 1200 > 1000: drop b (oldest)
    assert "b" not in store and all(k in store for k in "acd") and store.bytes == 900
    store.get_or_compute("e", lambda: _blob(700))                    # drop c, then a
    assert [k for k, _ in store.snapshot()] == ["d", "e"] and store.bytes == 1000
    assert store.evictions == 3 and store.hits == 1 and store.misses == 5


def test_a_value_over_the_budget_is_returned_but_not_kept():
    store = ByteLRU(max_bytes=100, sizeof=lambda t: t.numel())
    store.get_or_compute("small", lambda: _blob(60))
    big = store.get_or_compute("big", lambda: _blob(101))
    assert big.numel() == 101 and "big" not in store and "small" in store and store.bytes == 60


def test_max_entries_and_ttl():
    now = [0.0]
    store = ByteLRU(max_bytes=10**9, max_entries=2, ttl=10, clock=lambda: now[0])
    calls = []

    def make(k):
        calls.append(k)
        return k * 3

    for k in "xyz":
        store.get_or_compute(k, lambda k=k: make(k))
    assert [k for k, _ in store.snapshot()] == ["y", "z"]
    now[0] = 5
    assert store.get_or_compute("z", lambda: make("z")) == "zzz" and calls == ["x", "y", "z"]
    now[0] = 11                                                    # z stored at t=0: expired
    assert store.get_or_compute("z", lambda: make("z")) == "zzz" and calls == ["x", "y", "z", "z"]
    assert "y" not in store                                        # expired too (not served)


def test_a_failing_computation_stores_nothing():
    store = ByteLRU(max_bytes=1000)
    with pytest.raises(RuntimeError):
        store.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert "k" not in store and store.bytes == 0
    assert store.get_or_compute("k", lambda: 7) == 7


def test_concurrent_use_keeps_the_books_exact():
    store = ByteLRU(max_bytes=5000, max_entries=20, sizeof=lambda t: t.numel())
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(400):
                k = rng.randrange(60)
                v = store.get_or_compute(k, lambda k=k: _blob(100 + 10 * k))
                assert v.numel() == 100 + 10 * k
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    live = store.snapshot()
    assert store.bytes == sum(v.numel() for _, v in live) <= 5000 and len(live) <= 20


def test_nbytes_of_a_trace_counts_its_tensors():
    model = rnnviz.build_model(rnnviz.ModelConfig("lstm", 32, 2, ("<unk>", *"abc ")), seed=0)
    tr = rnnviz.trace(model, "abc cab " * 50)
    tensors = sum(t.element_size() * t.nelement() for t in tr.cache.values())
    assert tensors <= nbytes(tr) <= tensors * 1.05 + 200_000


def test_a_key_is_computed_once_while_others_wait_for_it():
    store = ByteLRU(max_bytes=10**6)
    started, release, calls, results = threading.Event(), threading.Event(), [], []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return "value"

    first = threading.Thread(target=lambda: results.append(store.get_or_compute("k", slow)))
    first.start()
    assert started.wait(5)
    others = [threading.Thread(target=lambda: results.append(store.get_or_compute("k", slow)))
              for _ in range(5)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert results == ["value"] * 6 and len(calls) == 1


def test_waiters_recompute_after_a_failure_and_share_an_oversized_value():
    store = ByteLRU(max_bytes=10, sizeof=len)
    gate, attempts = threading.Event(), []

    def failing():
        attempts.append("fail")
        gate.wait(5)
        raise ValueError("no")

    def waiter_result(out):
        out.append(store.get_or_compute("k", lambda: attempts.append("ok") or "fine"))

    errs, got = [], []
    t1 = threading.Thread(target=lambda: errs.append(pytest.raises(ValueError, store.get_or_compute, "k", failing)))
    t1.start()
    while not attempts:
        pass
    t2 = threading.Thread(target=waiter_result, args=(got,))
    t2.start()
    gate.set()
    t1.join(5), t2.join(5)
    assert got == ["fine"] and attempts == ["fail", "ok"] and "k" in store
    big = store.get_or_compute("big", lambda: "x" * 50)     # over the budget: returned, not kept
    assert big == "x" * 50 and "big" not in store


def test_an_in_place_edit_of_a_shared_trace_fails_loudly():
    """Why handing one Trace object to every session is acceptable: rnnviz.trace builds it under
    torch.inference_mode, and an in-place update of an inference tensor outside inference mode
    raises — so a view that tried it would show up as an exception in the view tests. (Torch raises
    after writing, so this detects, it does not prevent: tests/test_readonly_model.py also checks
    every shared trace bit for bit after all views and knobs have run.)"""
    model = rnnviz.build_model(rnnviz.ModelConfig("gru", 8, 1, ("<unk>", *"ab ")), seed=0)
    tr = rnnviz.trace(model, "ab ba ab")
    for name in tr.names():
        assert tr[name].is_inference()
        with pytest.raises(RuntimeError, match="[Ii]nplace update to inference tensor"):
            tr[name].mul_(2.0)
