"""Benchmark row: training throughput of ``rnnviz.training.train_step`` vs a plain fused torch.nn loop.

"Ours" is exactly the step the trainer runs: ``CharRNN`` forward (one-hot → fused nn.LSTM/GRU/RNN
per layer → dropout → Linear), cross-entropy, backward, global-norm clipping, Adam. The reference
is the same computation written directly against ``torch.nn`` (one ``nn.LSTM`` with
``num_layers=L``, ``nn.Linear``, ``F.one_hot``, same optimiser and clipping), sized identically.
Both see the same (T, B) batches. Timing alternates short blocks of ours and the reference and
keeps the fastest block of each (robust to other processes on a shared machine).

``ratio`` = reference_s / ours_s = our chars/s ÷ reference chars/s; target ≥ 0.9, so rows carry
``"higher_is_better": True`` (tools.bench's other rows are time ratios, lower is better).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from rnnviz.model import ModelConfig, build_model
from rnnviz.training import train_step

TARGET = 0.9
_CASES_FULL = [("lstm", 256, 1, 64, 64), ("gru", 256, 1, 64, 64), ("lstm", 256, 2, 32, 64)]
_CASES_QUICK = [("lstm", 128, 1, 32, 32)]


class _Reference(nn.Module):
    def __init__(self, cell: str, V: int, H: int, L: int):
        super().__init__()
        kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}[cell]
        self.rnn = kind(V, H, num_layers=L)
        self.out = nn.Linear(H, V)
        self.V = V

    def forward(self, ids, state=None):
        o, state = self.rnn(F.one_hot(ids, self.V).float(), state)
        return self.out(o), state


def _time_blocks(fns, steps: int, repeats: int) -> list[float]:
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / steps)
    return best


def bench_case(cell: str, H: int, L: int, B: int, T: int, steps: int, repeats: int, V: int = 65) -> dict:
    torch.manual_seed(0)
    tokens = ("<unk>", *[chr(33 + i) for i in range(V - 1)])
    model = build_model(ModelConfig(cell=cell, hidden_size=H, num_layers=L, tokens=tokens), seed=0)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ref = _Reference(cell, V, H, L)
    ref_params = list(ref.parameters())
    ref_opt = torch.optim.Adam(ref_params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    X = torch.randint(1, V, (T, B), generator=g)
    Y = torch.randint(1, V, (T, B), generator=g)
    carry = {"ours": None, "ref": None}

    def ours():
        _, carry["ours"] = train_step(model, opt, X, Y, carry["ours"], 1.0)

    def reference():
        logits, st = ref(X, carry["ref"])
        loss = F.cross_entropy(logits.reshape(-1, V), Y.reshape(-1))
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, 1.0, foreach=True)
        ref_opt.step()
        float(loss.detach())
        carry["ref"] = tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach()

    ours(), reference()  # warm-up
    ours_s, ref_s = _time_blocks([ours, reference], steps, repeats)
    return {"name": f"train step {cell} {L}x{H} B={B} T={T} (chars/s {B * T / ours_s:,.0f} vs "
                    f"{B * T / ref_s:,.0f})",
            "ours_s": ours_s, "reference_s": ref_s, "ratio": ref_s / ours_s, "target": TARGET,
            "higher_is_better": True}


def bench_training(quick: bool = False) -> list[dict]:
    """Rows {"name", "ours_s", "reference_s", "ratio", "target"}; times are seconds per step."""
    cases = _CASES_QUICK if quick else _CASES_FULL
    steps, repeats = (2, 3) if quick else (3, 4)
    return [bench_case(*case, steps=steps, repeats=repeats) for case in cases]


#: Default Train-view run: held-out perplexity targets after 60 s and 180 s of one core.
DEFAULT_RUN_TARGETS = ((60.0, 8.0), (180.0, 6.0))


def bench_default_run(seconds: float = 180.0, corpus: str = "timemachine", **knobs) -> list[dict]:
    """Rows {"name", "perplexity", "target", "seconds"}: the Train view's default run (the page's
    knob defaults, d2l cleaning) through the same TrainingPool the page uses, on one torch thread,
    for ``seconds``; best validation perplexity among the evaluations within each target's time.
    Minutes long at the defaults: run it alone on a quiet machine (``--default-run``)."""
    import math

    from rnnviz.corpora import load_corpus
    from rnnviz.training.limits import TrainLimits
    from rnnviz.training.pool import TrainingPool, run_config

    torch.set_num_threads(1)
    text = load_corpus(corpus).text
    cfg = run_config(**{"preprocessing": "d2l", "corpus": corpus, "max_steps": 0,
                        "max_seconds": seconds, **knobs})
    pool = TrainingPool(workers=1, limits=TrainLimits(max_seconds=max(seconds, 1.0)))
    rid = pool.submit("bench", text, cfg)
    while (snap := pool.snapshot(rid, "bench")).status in ("queued", "running"):
        time.sleep(0.5)
    pool.close()
    rows = []
    for limit, target in DEFAULT_RUN_TARGETS:
        vals = [r["val_loss"] for r in snap.history if r["seconds"] <= limit]
        ppl = math.exp(min(vals)) if vals else float("nan")
        rows.append({"name": f"default Train run ({cfg.cell} {cfg.layers}x{cfg.hidden} on {corpus}) "
                             f"val perplexity after {limit:g} s of one core",
                     "perplexity": ppl, "target": target, "seconds": snap.seconds,
                     "steps": snap.step, "chars_per_second": snap.chars_per_second,
                     "status": snap.message})
    return rows


def _main(argv: list[str]) -> None:
    if "--default-run" in argv:
        seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 180.0
        knobs = {"hidden": int(argv[argv.index("--hidden") + 1])} if "--hidden" in argv else {}
        for row in bench_default_run(seconds, **knobs):
            ok = "ok" if row["perplexity"] <= row["target"] else "ABOVE TARGET"
            print(f"{row['name']}: {row['perplexity']:.2f} (target ≤ {row['target']:g}) {ok}; "
                  f"{row['steps']} steps in {row['seconds']:.1f} s, {row['chars_per_second']:,.0f} chars/s")
        return
    for row in bench_training(quick="--quick" in argv):
        ok = "ok" if row["ratio"] >= row["target"] else "BELOW TARGET"
        print(f"{row['name']}: ours {row['ours_s'] * 1e3:.1f} ms, reference "
              f"{row['reference_s'] * 1e3:.1f} ms, ratio {row['ratio']:.2f} (target {row['target']}) {ok}")


if __name__ == "__main__":
    import sys
    _main(sys.argv[1:])
