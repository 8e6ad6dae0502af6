"""A cost model for heavy requests: before a computation runs, estimate its seconds from the text
length T, the hidden size h, the layers and the cell, and thin it (fewer characters) or refuse it
above a per-request budget, with a note that says what was reduced and why.

Estimates follow each algorithm's shape (:class:`Rates`): ``seconds = call + fixed + T · (step +
mac · recurrent MACs + batched · whole-text MACs + unit · h)``: a set-up per request, the size-only
part (eigen/singular values of W_hh, O(h³)), and per character the Python and dispatch overhead of
a step-by-step loop, the sequential h×h products (memory-bound once the weights pass CACHE_BYTES),
the products run for the whole text at once (layer 0's one-hot input, the output layer) and the
per-unit work (z-scores, ranks). Generation reads every weight each step; the Jacobian chain does
one layer's h×h products per step back. The constants are fitted to the CPU seconds that
``python -m tools.bench_cost`` measures on one torch thread (docs/BENCHMARKS.md): CPU seconds are
what the deadline (rnnviz.serving.deadline) counts, and they hardly move on a busy machine. The budget holds for any model
the checkpoint parser accepts (h ≤ 4,096, ≤ 8 layers): a request is cut to the characters that
fit, or refused when even ``minimum`` characters do not.

    plan = fit("norm_curve", model.config, len(text))
    text = text[:plan.steps]; plan.note        # "Reduced because …" or None
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cells import spec
from ..model import ModelConfig

@dataclass(frozen=True)
class Rates:
    """Seconds of one operation: per request (``call``), per character of its step-by-step loop
    (``step``), per sequential multiply–add (``mac``: weights in cache, weights over CACHE_BYTES),
    per multiply–add of the whole-text products (``batched``) and per (character, unit) (``unit``)."""

    call: float
    step: float
    mac: tuple[float, float]
    batched: float = 0.0
    unit: float = 0.0


#: Fitted to tools.bench_cost's CPU seconds (one torch thread, h = 64–1,024, |V| = 64 / 8,000,
#: T = 100 / 400; docs/BENCHMARKS.md). The gradient operations (norm_curve, gmap, presets, chain)
#: were measured to h = 256 only: their rate for weights over CACHE_BYTES is the earlier one, from
#: runs of the largest accepted models.
RATES = {
    "trace": Rates(2.2e-3, 5.6e-6, (1.4e-10, 3.4e-10), 5.8e-11),        # fused forward + gate recovery
    "forward2": Rates(1.8e-3, 5.6e-5, (4.4e-10, 6.0e-10), 1.1e-10),     # two step-by-step forwards
    "generate": Rates(0.0, 4.1e-4, (3.5e-10, 4.9e-10)),                 # a step per character, all weights
    "index": Rates(2.1e-3, 1.1e-5, (1.6e-10, 2.7e-10), 4.6e-11, unit=8.3e-8),   # trace + z-scores, ranks
    "norm_curve": Rates(0.0, 3.2e-4, (4.0e-9, 3e-8), 3.2e-10),          # float64 Jacobian terms per step
    "gmap": Rates(1.6e-3, 1.8e-4, (1.3e-9, 4e-8), 6.2e-11),             # + its rows at GMAP_MACS_PER_SECOND
    "presets": Rates(1.0e-2, 2.4e-5, (9.5e-10, 9e-8), 2.4e-10),         # the Lesson's three norm curves
    "chain": Rates(1.1e-2, 3.9e-4, (8.3e-9, 4.5e-8)),                   # per step back: h×h products
}
#: Recurrent weights (float32 bytes) above this no longer stay in the CPU caches.
CACHE_BYTES = 8 * 2**20
#: Seconds per request and per g·h³ of the size-only part: eigen- and singular values of each W_hh
#: block (spectrum), the chain's spectral-norm set-up.
SPECTRUM_CALL = 1.9e-3
FIXED_PER_H3 = {"spectrum": 2.2e-9, "chain": 2.4e-9}
#: Unit orders (rnnviz.views.unit_order) of (T, h) values: seconds per call, per T·h (variances),
#: per h (the Python sort and loop over units), per T·h² (the Gram / correlation matrix), per h²
#: (the clustered chain's masked argmin per unit; the pattern's seriation) and per h³ (the
#: pattern's eigendecomposition).
ORDER_RATES = {"variance": (4.5e-5, 1.8e-8, 2.9e-6, 0.0, 0.0, 0.0),
               "clustered": (3.9e-4, 5.8e-8, 2.5e-5, 3.4e-11, 9.6e-9, 0.0),
               "pattern": (1.3e-3, 1.9e-8, 0.0, 1.6e-10, 8.3e-8, 1.8e-10)}
#: Seconds per request and per multiply–add of a thin SVD (float64, one thread): T·D·min(T, D).
SVD_CALL = 1.7e-3
SVD_SECONDS = 7.4e-10
#: Every operation a heavy call names (its budget and deadline: op_budget, deadline_seconds).
OPERATIONS = frozenset(RATES) | frozenset(FIXED_PER_H3) | {"unit_order", "pca"}
#: Operations built once per checkpoint and shared by every session get this many budgets.
BUDGET_FACTOR = {"index": 10.0}
#: Multiply–adds per second of the gradient map's batched backward (its rows are planned by MACs).
GMAP_MACS_PER_SECOND = 5e10
#: The default per-request budget (estimated seconds); callers pass their own ``request_seconds``
#: (the app: its RNNVIZ_REQUEST_SECONDS setting).
REQUEST_SECONDS = 2.0
#: A running request is stopped after this many times its budget (estimates are rough).
DEADLINE_FACTOR = 4.0


class CostError(ValueError):
    """A request would cost more than its budget even at its smallest; the message says why."""


def op_budget(op: str, request_seconds: float = REQUEST_SECONDS) -> float:
    """The budget of ``op`` in estimated seconds (the per-request budget × BUDGET_FACTOR)."""
    return request_seconds * BUDGET_FACTOR.get(op, 1.0)


def deadline_seconds(op: str = "", request_seconds: float = REQUEST_SECONDS) -> float:
    """How long a request may run before it is stopped: DEADLINE_FACTOR × its budget, ≥ 1 s."""
    return max(1.0, DEADLINE_FACTOR * op_budget(op, request_seconds))


def step_macs(cfg: ModelConfig) -> float:
    """Multiply–adds of one forward step: Σ_layers gates·h·(input + h), plus the output h·|V|."""
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    total = g * h * (cfg.vocab_size + h) + h * cfg.vocab_size
    return float(total + (cfg.num_layers - 1) * g * h * 2 * h)


def fixed_seconds(op: str, cfg: ModelConfig) -> float:
    """The part of ``op`` that does not grow with the text: its set-up per request, and the
    size-only eigen/singular values (g·h³ per W_hh block) of the spectrum and the chain."""
    per = FIXED_PER_H3.get(op, 0.0)
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    layers = cfg.num_layers if op == "spectrum" else 1
    call = SPECTRUM_CALL if op == "spectrum" else RATES[op].call if op in RATES else 0.0
    return call + per * layers * g * float(h) ** 3


def weight_bytes(cfg: ModelConfig) -> float:
    """float32 bytes of the weights one forward step reads."""
    return 4.0 * step_macs(cfg)


def recurrent_macs(cfg: ModelConfig) -> float:
    """Multiply–adds of one step's sequential part: the h×h recurrence of every layer, and layer
    0's one-hot input, one column of W_ih (a gather, g·h). A layer's input from the layer below is
    known for the whole text before the layer runs: it is part of :func:`batched_macs`."""
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    return float(cfg.num_layers * g * h * h + g * h)


def batched_macs(cfg: ModelConfig) -> float:
    """Multiply–adds per step of the parts run for all steps at once: layer 0's one-hot input
    (one (T, |V|) × (|V|, g·h) product), the inputs of layers ≥ 1 ((T, h) × (h, g·h) each) and
    the output layer ((T, h) × (h, |V|))."""
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    return float(g * h * cfg.vocab_size + (cfg.num_layers - 1) * g * h * h + h * cfg.vocab_size)


def estimate(op: str, cfg: ModelConfig, steps: int) -> float:
    """Estimated seconds of ``op`` over ``steps`` characters (see the module docstring).

    Generation steps one character at a time: every weight, the one-hot input's and the output
    layer's included, is read every step (the memory-bound rate once they pass CACHE_BYTES). The
    other operations run the vocabulary-sized products for the whole text at once (``batched``),
    and only the recurrent part step by step (memory-bound once W_hh passes CACHE_BYTES); the
    Jacobian chain does one layer's h×h products per step back (two for gated cells)."""
    if op not in RATES:
        return fixed_seconds(op, cfg)
    r, h = RATES[op], cfg.hidden_size
    if op == "generate":
        per = r.mac[weight_bytes(cfg) > CACHE_BYTES] * step_macs(cfg)
    elif op == "chain":
        per = r.mac[4.0 * recurrent_macs(cfg) > CACHE_BYTES] * (1 if spec(cfg.cell).is_vanilla else 2) * float(h) ** 2
    else:
        per = (r.mac[4.0 * recurrent_macs(cfg) > CACHE_BYTES] * recurrent_macs(cfg)
               + r.batched * batched_macs(cfg) + r.unit * h)
    return fixed_seconds(op, cfg) + steps * (r.step + per)


@dataclass(frozen=True)
class Plan:
    """What a request may do: ``steps`` of the ``requested`` characters, ~``seconds`` (estimated)
    against ``budget``; ``full_seconds`` is the estimate for all of them."""

    what: str
    steps: int
    requested: int
    seconds: float
    full_seconds: float
    budget: float
    model: str = ""


    @property
    def reduced(self) -> bool:
        return self.steps < self.requested

    @property
    def note(self) -> str | None:
        """"Reduced because …" in plain words, or None when nothing was reduced."""
        if not self.reduced:
            return None
        return (f"Reduced because the {self.what} of all {self.requested:,} characters would take "
                f"~{self.full_seconds:.3g} s for this model ({self.model}), over the {self.budget:g} s budget "
                f"per request: it uses {self.steps:,} characters (~{self.seconds:.2g} s).")


def fit(op: str, cfg: ModelConfig, steps: int, what: str | None = None, minimum: int = 2,
        limit: float | None = None, request_seconds: float = REQUEST_SECONDS) -> Plan:
    """The most characters (≤ ``steps``) whose estimate fits the budget (``limit``, else
    :func:`op_budget` of ``request_seconds``). Raises CostError when even ``minimum`` characters
    do not fit."""
    limit = op_budget(op, request_seconds) if limit is None else limit
    what = what or op.replace("_", " ")
    full = estimate(op, cfg, steps)
    if full <= limit:
        return Plan(what, steps, steps, full, full, limit, describe(cfg))
    if fixed_seconds(op, cfg) > limit:
        raise CostError(f"Not computed: the {what} alone would take ~{fixed_seconds(op, cfg):.3g} s for "
                        f"this model ({describe(cfg)}), over the {limit:g} s budget per request.")
    per = (full - fixed_seconds(op, cfg)) / max(steps, 1)
    fitted = int((limit - fixed_seconds(op, cfg)) / per) if per > 0 else steps
    if fitted < min(minimum, steps):
        raise CostError(f"Not computed: the {what} would take ~{estimate(op, cfg, min(minimum, steps)):.3g} s "
                        f"even for {min(minimum, steps)} characters with this model ({describe(cfg)}), "
                        f"over the {limit:g} s budget per request.")
    kept = min(fitted, steps)
    return Plan(what, kept, steps, estimate(op, cfg, kept), full, limit, describe(cfg))


def fit_generation(cfg: ModelConfig, prefix: int, n: int,
                   request_seconds: float = REQUEST_SECONDS) -> Plan:
    """The plan of generating ``n`` characters after a ``prefix``-character prefix: the prefix is
    read in one whole-text pass (priced as a trace), the rest of the budget buys generated
    characters one step each (``plan.steps`` of them). Raises CostError when not even one fits."""
    budget = op_budget("generate", request_seconds)
    head = estimate("trace", cfg, prefix)
    if head + estimate("generate", cfg, 1) > budget:
        raise CostError(f"Not computed: reading the {prefix:,}-character prefix and generating one "
                        f"character would take ~{head + estimate('generate', cfg, 1):.3g} s with this "
                        f"model ({describe(cfg)}), over the {budget:g} s budget per request.")
    return fit("generate", cfg, n, what="generation", minimum=1, limit=budget - head)


def order_seconds(method: str, steps: int, hidden: int) -> float:
    """Estimated seconds of a unit order (rnnviz.views.unit_order) of (steps, hidden) values."""
    if method not in ORDER_RATES:          # 'trained': the units as they are
        return 0.0
    call, th, h, th2, h2, h3 = ORDER_RATES[method]
    T, n = float(steps), float(hidden)
    return call + th * T * n + h * n + th2 * T * n * n + h2 * n * n + h3 * n ** 3


def check_order(method: str, steps: int, hidden: int, limit: float) -> None:
    """Raise CostError when the unit order ``method`` would take over ``limit`` seconds."""
    need = order_seconds(method, steps, hidden)
    if need > limit:
        raise CostError(f"Ordering {hidden:,} units '{method}' over {steps:,} steps would take "
                        f"~{need:.3g} s, over the {limit:g} s budget per request.")


def pca_seconds(steps: int, dims: int) -> float:
    """Estimated seconds of a PCA (thin SVD) of a (steps, dims) trajectory."""
    return SVD_CALL + SVD_SECONDS * steps * dims * min(steps, dims)


def check_pca(steps: int, dims: int, limit: float) -> None:
    """Raise CostError when a PCA (thin SVD) of a (steps, dims) trajectory would take over ``limit``."""
    need = pca_seconds(steps, dims)
    if need > limit:
        raise CostError(f"Not computed: a PCA of {dims:,} dimensions over {steps:,} steps would take "
                        f"~{need:.3g} s, over the {limit:g} s budget per request. Pick fewer states or "
                        "a shorter text.")


def gmap_max_macs(plan: Plan) -> float:
    """The gradient map's multiply–add cap: what is left of the budget after ``plan`` (its
    per-step part), at GMAP_MACS_PER_SECOND."""
    return max(plan.budget - plan.seconds, 0.1 * plan.budget) * GMAP_MACS_PER_SECOND


def describe(cfg: ModelConfig) -> str:
    """The model's size in words, e.g. "8-layer lstm, h = 4,096"."""
    return f"{cfg.num_layers}-layer {cfg.cell}, h = {cfg.hidden_size:,}"
