"""Compiled backward recurrences for :mod:`rnnviz.gradients` (numba), split over threads per step.

Why this exists: the hand-written backward pass is one (h × G·h) matrix–vector product per step
(G = 1/3/4 for RNN/GRU/LSTM). At H = 512 that reads all of W_hh, 4 MB in float32, every step: it is
memory-bound, and MKL runs it on one core. A Python loop cannot split it over two cores: handing
work to a second thread costs more than it saves. Here the whole loop runs in one compiled
function; each step's product is split by rows into ``threads`` blocks (one parallel region per
step), which brings the backward pass to the speed of the fused forward. Current figures:
``python -m tools.bench_gradients`` and docs/BENCHMARKS.md.

These loops are the only backward recurrences of the product for every cell (RNN, GRU, LSTM and
the book's GRU; the tests compare them with autograd and with plain torch loops,
``tests/backward_loops.py``); only the
summation order inside a dot product differs from that loop. The kernels are compiled with
``fastmath={"reassoc", "contract"}`` and nothing more, so inf and nan propagate as in plain
arithmetic (overflow is reported, not optimised away). numba is a hard requirement.

Calls are serialised by a lock (a shared server runs sessions in threads; two kernels at once
would only fight over the same cores), and compiled code is cached on disk (``cache=True``), so
only the first run on a machine pays the 2–5 s compile per cell and dtype.
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

from .serving.deadline import check

_LOCK = threading.Lock()
#: Compile flags: reassociation (vectorised dot products) and FMA contraction; no nnan/ninf.
_FAST = {"reassoc", "contract"}


def _jit(**options):
    """numba.njit with an on-disk cache where one can be written (the package folder's
    __pycache__, else numba's per-user cache); without one (read-only install, no home), compile
    per process instead of failing at import."""
    def decorate(fn):
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:  # numba: "cannot cache function …: no locator available"
            return njit(**options)(fn)
    return decorate


@_jit(fastmath=_FAST, inline="always")
def _dot(row, v):  # pragma: no cover - compiled
    s = row[0] * v[0]
    for k in range(1, row.shape[0]):
        s += row[k] * v[k]
    return s

@_jit(fastmath=_FAST, parallel=True)
def _accumulate(WT, v, out, blocks):  # pragma: no cover - compiled
    """out += WT @ v, the rows of WT (h, n) split into ``blocks`` contiguous blocks."""
    h = WT.shape[0]
    for b in prange(blocks):
        for j in range(b * h // blocks, (b + 1) * h // blocks):
            out[j] += _dot(WT[j], v)

@_jit(fastmath=_FAST)
def _rnn(WT, dH, D, da, last, stop, cut, blocks):  # pragma: no cover - compiled
    h = dH.shape[1]
    for t in range(last, stop - 1, -1):
        for j in range(h):
            da[t, j] = dH[t, j] * D[t, j]
        if t > 0 and not cut[t]:
            _accumulate(WT, da[t], dH[t - 1], blocks)

@_jit(fastmath=_FAST)
def _gru(WT, dH, Qh, z, dpart, last, stop, cut, blocks):  # pragma: no cover - compiled
    h = dH.shape[1]
    for t in range(last, stop - 1, -1):
        for g in range(3):
            for j in range(h):
                dpart[t, g * h + j] = Qh[t, g, j] * dH[t, j]
        if t > 0 and not cut[t]:
            for j in range(h):
                dH[t - 1, j] += dH[t, j] * z[t, j]
            _accumulate(WT, dpart[t], dH[t - 1], blocks)

@_jit(fastmath=_FAST)
def _lstm(WT, dH, K, P, f, dC, da, carry, last, stop, cut, blocks):  # pragma: no cover - compiled
    h = dH.shape[1]
    for t in range(last, stop - 1, -1):
        for j in range(h):
            dc = carry[j] + dH[t, j] * K[t, j]
            dC[t, j] = dc
            da[t, j] = P[t, 0, j] * dc
            da[t, h + j] = P[t, 1, j] * dc
            da[t, 2 * h + j] = P[t, 2, j] * dc
            da[t, 3 * h + j] = P[t, 3, j] * dH[t, j]
        if t > 0 and not cut[t]:
            _accumulate(WT, da[t], dH[t - 1], blocks)
            for j in range(h):
                carry[j] = dC[t, j] * f[t, j]
        else:
            carry[:] = 0


@_jit(fastmath=_FAST)
def _gru_d2l_back(WnT, WrzT, dH, Q, dn, drz, g, da, last, stop, cut, blocks):  # pragma: no cover - compiled
    h = dH.shape[1]
    for t in range(last, stop - 1, -1):
        for j in range(h):
            dn[j] = dH[t, j] * Q[t, 0, j]                        # a_n
            drz[h + j] = dH[t, j] * Q[t, 1, j]                   # a_z
            g[j] = 0.0
        _accumulate(WnT, dn, g, blocks)                          # g = a_n W_n
        for j in range(h):
            drz[j] = g[j] * Q[t, 2, j]                           # a_r
            da[t, j], da[t, h + j], da[t, 2 * h + j] = drz[j], drz[h + j], dn[j]
        if t > 0 and not cut[t]:
            for j in range(h):
                dH[t - 1, j] += dH[t, j] * Q[t, 4, j] + g[j] * Q[t, 3, j]
            _accumulate(WrzT, drz, dH[t - 1], blocks)


@_jit(fastmath=_FAST)
def _cell_scan(i, f, g, c0, c):  # pragma: no cover - compiled
    T, h = c.shape
    for j in range(h):
        c[0, j] = f[0, j] * c0[j] + i[0, j] * g[0, j]
    for t in range(1, T):
        for j in range(h):
            c[t, j] = f[t, j] * c[t - 1, j] + i[t, j] * g[t, j]


@_jit(fastmath=_FAST)
def _gru_d2l(xp, w, h, out):  # pragma: no cover - compiled
    T, B, h3 = xp.shape
    H = h3 // 3
    r, z, rh = np.empty(H, xp.dtype), np.empty(H, xp.dtype), np.empty(H, xp.dtype)
    for t in range(T):
        for b in range(B):
            hb = h[b] if t == 0 else out[t - 1, b]
            for j in range(H):
                r[j] = 1.0 / (1.0 + np.exp(-(xp[t, b, j] + _dot(w[j], hb))))
                z[j] = 1.0 / (1.0 + np.exp(-(xp[t, b, H + j] + _dot(w[H + j], hb))))
                rh[j] = r[j] * hb[j]
            for j in range(H):
                cand = np.tanh(xp[t, b, 2 * H + j] + _dot(w[2 * H + j], rh))
                out[t, b, j] = cand + z[j] * (hb[j] - cand)


_STARTED = False


def _start_threads() -> None:
    """Start numba's thread pool with passive waiting. Its OpenMP layer is a second OpenMP runtime
    beside torch's; by default idle OpenMP workers spin for a while after each parallel region,
    and spinning numba workers starved torch's oneDNN LSTM (one barrier per step) right after a
    kernel ran. libgomp reads OMP_WAIT_POLICY once, when it is loaded, which for numba's runtime
    is its first parallel call — here, through the public ``numba.get_num_threads`` (torch's
    runtime was loaded, unaffected, at ``import torch``). The variable is set for that call only."""
    global _STARTED
    if _STARTED:
        return
    saved = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        numba.get_num_threads()     # launches the thread pool (numba's documented threading API)
    finally:
        if saved is None:
            del os.environ["OMP_WAIT_POLICY"]
        else:
            os.environ["OMP_WAIT_POLICY"] = saved
    _STARTED = True


#: Multiply–adds per kernel call: a backward pass runs in chunks of steps of about this much work
#: (~10–30 ms), with a deadline check (rnnviz.serving.deadline) between them, since compiled code cannot
#: look at the deadline itself.
CHUNK_MACS = 50_000_000


def _run(kernel, threads: int, arrays: tuple, last: int, cut: np.ndarray, macs_per_step: int) -> None:
    """Run ``kernel(*arrays, hi, lo, cut, blocks)`` over steps last … 0, newest first, in chunks
    [lo, hi] of about CHUNK_MACS work, checking the deadline between chunks."""
    steps = max(1, CHUNK_MACS // max(1, macs_per_step))
    hi = last
    while hi >= 0:
        lo = max(0, hi - steps + 1)
        with _LOCK:
            _start_threads()
            blocks = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
            numba.set_num_threads(blocks)
            kernel(*arrays, hi, lo, cut, blocks)
        hi = lo - 1
        if hi >= 0:
            check()


def rnn_backward(WT: np.ndarray, dH: np.ndarray, D: np.ndarray, da: np.ndarray, last: int,
                 cut: np.ndarray, threads: int) -> None:
    """In place: dH (T, h) holds the external adjoints and receives the total ones; da (T, h), zeros,
    receives dH_t ⊙ φ'(pre_t). WT = W_hh^T (h, h), D (T, h) = φ'(pre), cut (T,) bool: step t does
    not pass its adjoint to t−1 (truncation). Steps after ``last`` are left alone."""
    _run(_rnn, threads, (WT, dH, D, da), last, cut, WT.size)


def gru_backward(WT: np.ndarray, dH: np.ndarray, Qh: np.ndarray, z: np.ndarray, dpart: np.ndarray,
                 last: int, cut: np.ndarray, threads: int) -> None:
    """In place, GRU: WT (h, 3h), Qh (T, 3, h), z (T, h); dpart (T, 3h), zeros, receives the adjoints
    of [h W_hr, h W_hz, h W_hn + b_hn]. dH as in :func:`rnn_backward`."""
    _run(_gru, threads, (WT, dH, Qh, z, dpart), last, cut, WT.size)


def lstm_backward(WT: np.ndarray, dH: np.ndarray, K: np.ndarray, P: np.ndarray, f: np.ndarray,
                  dC: np.ndarray, da: np.ndarray, last: int, cut: np.ndarray, threads: int) -> None:
    """In place, LSTM: WT (h, 4h), K (T, h), P (T, 4, h), f (T, h); dC (T, h) receives the total
    adjoints of C_t and da (T, 4h), zeros, the pre-activation adjoints (torch order i, f, g, o)."""
    carry = np.zeros(dH.shape[1], dtype=dH.dtype)      # dC_{t+1} ⊙ F_{t+1}, across chunks
    _run(_lstm, threads, (WT, dH, K, P, f, dC, da, carry), last, cut, WT.size)


def gru_d2l_backward(WT: np.ndarray, dH: np.ndarray, Q: np.ndarray, da: np.ndarray, last: int,
                     cut: np.ndarray, threads: int) -> None:
    """In place, the book's GRU: WT = W_hh^T (h, 3h); Q (T, 5, h) = [qn, qz, s, R, Z] (see
    rnnviz.cells.gru_d2l); da (T, 3h), zeros, receives the pre-activation adjoints [a_r, a_z, a_n].
    Two products a step: g = a_n W_n first, since a_r = g ⊙ s needs it. dH as in :func:`rnn_backward`."""
    h = dH.shape[1]
    scratch = (np.zeros(h, dH.dtype), np.zeros(2 * h, dH.dtype), np.zeros(h, dH.dtype))   # a_n, [a_r, a_z], g
    _run(_gru_d2l_back, threads, (np.ascontiguousarray(WT[:, 2 * h:]), np.ascontiguousarray(WT[:, :2 * h]),
                                  dH, Q, *scratch, da), last, cut, WT.size)


def cell_scan(i: np.ndarray, f: np.ndarray, g: np.ndarray, c0: np.ndarray, c: np.ndarray) -> None:
    """The LSTM memory cell, in place: c (T, h) receives C_t = F_t ⊙ C_{t−1} + I_t ⊙ C̃_t from the
    gates i, f, g (T, h; any strides) and C_{−1} = c0 (h,). One sequential pass (no thread pool:
    it is memory-bound and short)."""
    _cell_scan(i, f, g, c0, c)


def gru_d2l_forward(xp: np.ndarray, w: np.ndarray, h0: np.ndarray, out: np.ndarray) -> None:
    """The book's GRU (d2l §10.2) over a whole sequence, in place: for each step t and stream b,
    R = σ(xp_r + H_{t−1} W_hr), Z = σ(xp_z + H_{t−1} W_hz), H̃ = tanh(xp_n + (R ⊙ H_{t−1}) W_hh),
    H_t = H̃ + Z ⊙ (H_{t−1} − H̃) into out[t, b] (T, B, h). xp (T, B, 3h): X_t W_x· + b· (blocks r,
    z, n); w (3h, h): ``weight_hh_l0`` (rows = output units); h0 (B, h): H_{−1}. One compiled loop,
    no thread pool (a step is ~0.2 M multiply–adds at h = 256: a parallel region would cost more)."""
    _gru_d2l(xp, w, h0, out)


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel for float32 and float64 on tiny inputs,
    so a first Gradients view does not wait for the compiler."""
    T, h = 3, 2
    for dt in (np.float32, np.float64):
        z = lambda *shape: np.zeros(shape, dtype=dt)  # noqa: E731
        cut = np.zeros(T, dtype=np.bool_)
        rnn_backward(z(h, h), z(T, h), z(T, h), z(T, h), T - 1, cut, 1)
        gru_backward(z(h, 3 * h), z(T, h), z(T, 3, h), z(T, h), z(T, 3 * h), T - 1, cut, 1)
        lstm_backward(z(h, 4 * h), z(T, h), z(T, h), z(T, 4, h), z(T, h), z(T, h), z(T, 4 * h),
                      T - 1, cut, 1)
        gru_d2l_backward(z(h, 3 * h), z(T, h), z(T, 5, h), z(T, 3 * h), T - 1, cut, 1)
        gates = z(T, 4 * h)[:, :h]                       # the trace passes strided views of one buffer
        cell_scan(gates, gates, gates, z(h), z(T, h))
        gru_d2l_forward(z(T, 1, 3 * h), z(3 * h, h), z(1, h), z(T, 1, h))
