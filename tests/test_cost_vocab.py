"""The cost model prices the vocabulary as what it is (issue 27, finding 9): layer 0's one-hot
input and the output layer are products over the whole text at once, not per-step memory-bound
work, so a large vocabulary no longer cuts a small model's trace to a few dozen characters."""

from __future__ import annotations

from rnnviz import ModelConfig
from rnnviz.serving import cost


def _cfg(V: int, h: int = 256, cell: str = "lstm", layers: int = 1) -> ModelConfig:
    return ModelConfig(cell, h, layers, ("<unk>", *(chr(0x4E00 + i) for i in range(V - 1))))


def test_a_large_vocabulary_does_not_cut_a_small_models_trace():
    plan = cost.fit("trace", _cfg(8_000), 1_000)
    assert plan.steps == 1_000, plan.note        # was cut to 63 characters (31.5 s estimated)
    assert plan.seconds < 3.0


def test_vocabulary_cost_is_linear_and_modest():
    small, big = cost.estimate("trace", _cfg(80), 1_000), cost.estimate("trace", _cfg(8_000), 1_000)
    assert big < 10 * small + 2.0


def test_recurrent_part_still_prices_large_hidden_sizes():
    plan = cost.fit("trace", _cfg(80, h=1024), 5_000)
    # W_hh (16 MB) over the CPU caches: ~1.2 ms of CPU per step measured (tools.bench_cost), so
    # 5,000 steps are over the 2 s budget
    assert plan.reduced and plan.steps < 2_000


def test_generation_still_reads_every_weight_per_step():
    assert cost.estimate("generate", _cfg(8_000), 100) > cost.estimate("trace", _cfg(8_000), 100)


def test_generation_reads_its_prefix_in_one_pass():
    """A 100,000-token model that traces quickly is not refused by Generate: the prefix is priced
    as one whole-text pass, only the generated characters step by step."""
    plan = cost.fit_generation(_cfg(100_000), 60, 200)
    assert plan.steps >= 1
    small = cost.fit_generation(_cfg(80), 60, 200)
    assert small.steps == 200 and not small.reduced
