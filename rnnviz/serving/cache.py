"""A thread-safe LRU cache bounded by *bytes* (and entries and age), for results shared by sessions.

Streamlit's ``st.cache_data`` bounds a cache by entry count and TTL only, and copies (pickles) every
value on each hit. For traces that is a poor fit: one 5,000-character trace of a 384-unit LSTM holds
about 46 MB of tensors, so 32 entries can reach 1.5 GB, and each hit unpickles tens of MB. This
cache holds each value once, hands the same object to every caller (callers must treat it as
read-only, as the app's views do: tests/test_readonly_model.py checks every shared trace bit for bit
after all views and knobs ran; and an in-place edit of a trace's inference tensors raises), and
evicts least-recently-used entries until the total size is under ``max_bytes``.

    store = ByteLRU(max_bytes=256 * 2**20, max_entries=64, ttl=3600)
    tr = store.get_or_compute(("timemachine-lstm", text), lambda: rnnviz.trace(model, text))
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Hashable

import torch

from .deadline import wait_for


def nbytes(value: Any, _depth: int = 0) -> int:
    """Approximate memory held by ``value``: tensor storage bytes plus ``sys.getsizeof`` of the
    containers and scalars around them (dataclasses, dicts, lists, tuples, strings), recursively."""
    if _depth > 6:
        return 0
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(nbytes(k, _depth + 1) + nbytes(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return size + sum(nbytes(v, _depth + 1) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return size + sum(nbytes(getattr(value, f.name), _depth + 1) for f in fields(value))
    return size


class _Flight:
    """A computation in progress: waiters block on ``done``; ``value`` is valid when ``ok``."""

    __slots__ = ("done", "value", "ok")

    def __init__(self):
        self.done = threading.Event()
        self.value: Any = None
        self.ok = False


class ByteLRU:
    """LRU cache with a byte budget.

    max_bytes: total size (by :func:`nbytes`) kept; a single value larger than this is returned but
        not kept. max_entries: at most this many values. ttl: seconds after which a value is
        recomputed (None: never). Thread-safe; computing a value does not hold the lock, and a key
        is computed by one caller at a time (others wait for its result).
    """

    def __init__(self, max_bytes: int, max_entries: int | None = None, ttl: float | None = None,
                 sizeof: Callable[[Any], int] = nbytes, clock: Callable[[], float] = time.monotonic):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes, self.max_entries, self.ttl = max_bytes, max_entries, ttl
        self._sizeof, self._clock = sizeof, clock
        self._items: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()
        self._inflight: dict[Hashable, _Flight] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items and not self._expired(self._items[key][2])

    def _expired(self, stamp: float) -> bool:
        return self.ttl is not None and self._clock() - stamp > self.ttl

    def _drop(self, key: Hashable) -> None:
        _, size, _ = self._items.pop(key)
        self._bytes -= size

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key``, or ``compute()`` (stored if it fits).

        A key is computed once at a time: callers that ask for a key already being computed wait
        for that result instead of repeating the work (20 sessions opening the same page at once
        compute its trace once). Exceptions from ``compute`` propagate to its caller, nothing is
        stored, and a waiting caller then computes the value itself.
        """
        while True:
            with self._lock:
                item = self._items.get(key)
                if item is not None and not self._expired(item[2]):
                    self._items.move_to_end(key)
                    self.hits += 1
                    return item[0]
                if item is not None:
                    self._drop(key)
                flight = self._inflight.get(key)
                if flight is None:
                    flight = self._inflight[key] = _Flight()
                    self.misses += 1
                    break
            wait_for(flight.done)       # (in the quick lane: MustWait, the caller waits instead)
            if flight.ok:
                with self._lock:
                    self.hits += 1
                return flight.value
        try:
            value = compute()
        except BaseException:
            self._release(key, flight)
            raise
        self._fulfil(key, flight, value)
        return value

    def peek(self, key: Hashable) -> tuple[bool, Any]:
        """(True, the cached value) when ``key`` is kept, else (False, None); never computes nor waits."""
        with self._lock:
            item = self._items.get(key)
            if item is None or self._expired(item[2]):
                return False, None
            self._items.move_to_end(key)
            self.hits += 1
            return True, item[0]

    def claim(self, key: Hashable) -> bool:
        """Take the computation of ``key`` on oneself (True), as :meth:`get_or_compute` would, so
        that others asking for it wait; the claimer later calls :meth:`fulfil` or :meth:`release`
        (from any thread). False when the key is kept or another caller computes it."""
        with self._lock:
            item = self._items.get(key)
            if (item is not None and not self._expired(item[2])) or key in self._inflight:
                return False
            if item is not None:
                self._drop(key)
            self._inflight[key] = _Flight()
            self.misses += 1
            return True

    def fulfil(self, key: Hashable, value: Any) -> None:
        """Store the claimed ``key``'s ``value`` (if it fits) and wake whoever waits for it."""
        with self._lock:
            flight = self._inflight.get(key)
        if flight is not None:
            self._fulfil(key, flight, value)

    def release(self, key: Hashable) -> None:
        """Give up the claimed ``key`` (its computation failed): a waiting caller computes it."""
        with self._lock:
            flight = self._inflight.get(key)
        if flight is not None:
            self._release(key, flight)

    def _release(self, key: Hashable, flight: _Flight) -> None:
        with self._lock:
            if self._inflight.get(key) is flight:
                del self._inflight[key]
        flight.done.set()

    def _fulfil(self, key: Hashable, flight: _Flight, value: Any) -> None:
        size = self._sizeof(value)
        with self._lock:
            if size <= self.max_bytes:
                self._items[key] = (value, size, self._clock())
                self._bytes += size
                while self._items and (self._bytes > self.max_bytes or (
                        self.max_entries is not None and len(self._items) > self.max_entries)):
                    self._drop(next(iter(self._items)))
                    self.evictions += 1
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            flight.value, flight.ok = value, True
        flight.done.set()

    def snapshot(self) -> list[tuple[Hashable, Any]]:
        """(key, value) of every live entry, least recently used first (for checks and reports)."""
        with self._lock:
            return [(k, v) for k, (v, _, stamp) in self._items.items() if not self._expired(stamp)]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
