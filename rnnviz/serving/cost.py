"""A cost model for heavy requests: before a computation runs, estimate its seconds from the text
length T, the hidden size h, the layers and the cell, and thin it (fewer characters) or refuse it
above a per-request budget, with a note that says what was reduced and why.

Estimates are ``seconds = T · per_step + fixed``: per_step = SECONDS_PER_MAC[op] · step MACs
(:func:`step_macs`, the multiply–adds of one forward step), fixed = the size-only part (the
eigen/singular values of W_hh, O(h³)). The constants come from the README benchmarks (quiet 2-core
machine) times a safety factor of 2–5 for a shared server, and, for weights too large for the CPU
caches (CACHE_BYTES), from runs of the largest accepted models on the busy machine; the deadline
(rnnviz.serving.deadline) stops whatever the estimate still gets wrong. The budget holds for any model
the checkpoint parser accepts (h ≤ 4,096, ≤ 8 layers): a request is cut to the characters that
fit, or refused when even ``minimum`` characters do not.

    plan = fit("norm_curve", model.config, len(text))
    text = text[:plan.steps]; plan.note        # "Reduced because …" or None
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cells import spec
from ..model import ModelConfig

#: Seconds per forward multiply–add of each operation (per character of text), as (weights in
#: cache, weights over CACHE_BYTES): a large model's step is bound by memory, not arithmetic.
SECONDS_PER_MAC = {
    "trace": (2e-10, 3e-9),         # fused forward + gate recovery
    "forward2": (3e-10, 8e-9),      # two step-by-step forwards: ablation, counterfactual, forgetting
    "generate": (3e-10, 6e-9),      # one step per generated character (sampling in Python)
    "index": (1e-9, 8e-9),          # unit index: trace + z-scores + ranks of every unit
    "norm_curve": (2e-9, 3e-8),     # ‖∂L/∂H_t‖ in float64: Jacobian terms of every step
    "gmap": (5e-10, 4e-8),          # gradient map: Jacobian terms (rows planned by MACs apart)
    "presets": (6e-9, 9e-8),        # the Lesson's three norm curves
    "chain": (1.5e-8, 4.5e-8),      # Jacobian chain, per step back and per h² (×2 for gated cells)
}
#: Recurrent weights (float32 bytes) above this no longer stay in the CPU caches.
CACHE_BYTES = 8 * 2**20
#: Seconds per h³ of the size-only part: eigen- and singular values of each W_hh block (spectrum),
#: the chain's spectral-norm set-up.
FIXED_PER_H3 = {"spectrum": 4e-9, "chain": 5e-10}
#: Seconds per multiply–add of the unit orders: the (h, h) Gram / correlation matrix over T steps
#: ('clustered', 'pattern'), and the h³ eigendecomposition of 'pattern' (float64, one thread).
ORDER_GRAM_SECONDS = 4e-10
ORDER_EIGH_SECONDS = 3e-9
#: How much faster per multiply–add the whole-text products (one-hot input, output layer) run than
#: an operation's step-by-step loop (one large matrix product instead of T small ones).
BATCHED_SPEEDUP = 2.0
#: Every operation a heavy call names (its budget and deadline: op_budget, deadline_seconds).
OPERATIONS = frozenset(SECONDS_PER_MAC) | frozenset(FIXED_PER_H3) | {"unit_order", "pca"}
#: Seconds per multiply–add of a thin SVD (float64, one thread): T·D·min(T, D) of them.
SVD_SECONDS = 2e-9
#: Operations built once per checkpoint and shared by every session get this many budgets.
BUDGET_FACTOR = {"index": 10.0}
#: Multiply–adds per second of the gradient map's batched backward (its rows are planned by MACs).
GMAP_MACS_PER_SECOND = 5e9
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
    """The size-only part of ``op`` in seconds (0 for most operations)."""
    per = FIXED_PER_H3.get(op, 0.0)
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    layers = cfg.num_layers if op == "spectrum" else 1
    return per * layers * g * float(h) ** 3


def weight_bytes(cfg: ModelConfig) -> float:
    """float32 bytes of the weights one forward step reads."""
    return 4.0 * step_macs(cfg)


def recurrent_macs(cfg: ModelConfig) -> float:
    """Multiply–adds of one step's sequential part: the h×h recurrences of every layer and the
    h×h inputs of layers ≥ 1; layer 0's one-hot input picks one column of W_ih (a gather, g·h)."""
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    return float(g * h * h + (cfg.num_layers - 1) * g * h * 2 * h + g * h)


def batched_macs(cfg: ModelConfig) -> float:
    """Multiply–adds per step of the parts run for all steps at once: layer 0's one-hot input
    (one (T, |V|) × (|V|, g·h) product) and the output layer ((T, h) × (h, |V|))."""
    g, h = len(spec(cfg.cell).gates), cfg.hidden_size
    return float(g * h * cfg.vocab_size + h * cfg.vocab_size)


def estimate(op: str, cfg: ModelConfig, steps: int) -> float:
    """Estimated seconds of ``op`` over ``steps`` characters.

    Generation steps one character at a time: every weight is read every step (the memory-bound
    rate once they pass CACHE_BYTES). The other operations run the vocabulary-sized products for
    the whole text at once (compute-bound: the small rate whatever |V|), and only the recurrent
    part step by step (memory-bound once W_hh passes CACHE_BYTES)."""
    small, big = SECONDS_PER_MAC.get(op, (0.0, 0.0))
    if op == "generate":
        per = (big if weight_bytes(cfg) > CACHE_BYTES else small) * step_macs(cfg)
    else:
        rate = big if 4.0 * recurrent_macs(cfg) > CACHE_BYTES else small
        per = rate * recurrent_macs(cfg) + small / BATCHED_SPEEDUP * batched_macs(cfg)
    if op == "chain":             # one layer's h×h Krylov products per step back
        per = rate * (1 if spec(cfg.cell).is_vanilla else 2) * float(cfg.hidden_size) ** 2
    return fixed_seconds(op, cfg) + steps * per


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
    per_value = 1e-8 * steps * hidden                      # variances: one pass
    if method in ("clustered", "pattern"):
        per_value += ORDER_GRAM_SECONDS * steps * float(hidden) ** 2
    if method == "pattern":
        per_value += ORDER_EIGH_SECONDS * float(hidden) ** 3
    return per_value


def check_order(method: str, steps: int, hidden: int, limit: float) -> None:
    """Raise CostError when the unit order ``method`` would take over ``limit`` seconds."""
    need = order_seconds(method, steps, hidden)
    if need > limit:
        raise CostError(f"Ordering {hidden:,} units '{method}' over {steps:,} steps would take "
                        f"~{need:.3g} s, over the {limit:g} s budget per request.")


def pca_seconds(steps: int, dims: int) -> float:
    """Estimated seconds of a PCA (thin SVD) of a (steps, dims) trajectory."""
    return SVD_SECONDS * steps * dims * min(steps, dims)


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
