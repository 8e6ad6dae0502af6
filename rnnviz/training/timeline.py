"""Recording a training timeline (the file format and loader are :mod:`rnnviz.timeline`).

Early steps change the weights most, so snapshots are spaced logarithmically: :func:`log_steps`
gives ``n`` integer steps from 0 to ``total``, geometric where integers allow (linear at the very
start, where a geometric sequence would repeat integers). The checkpoint holds the *best* weights,
at ``best_step``, which is only known at the end; so during the run :class:`TimelineRecorder` keeps
candidate snapshots at ``log_steps(planned_total, 3 n)`` (float16 copies on the CPU), and at the end
picks the ``n − 1`` candidates nearest (in log step) to ``log_steps(best_step, n)`` below the best
step; the checkpoint itself is the last snapshot.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from ..model import CharRNN
from ..timeline import save_timeline, timeline_path
from .evaluate import evaluate_loss

log = logging.getLogger(__name__)

#: How many snapshots a timeline may be asked to keep (first and last included).
MIN_SNAPSHOTS, MAX_SNAPSHOTS = 2, 24
#: Candidates kept during the run, per snapshot wanted.
CANDIDATES_PER_SNAPSHOT = 3


def log_steps(total: int, n: int) -> list[int]:
    """``min(n, total + 1)`` distinct integer steps from 0 to ``total`` (both included), increasing,
    spaced geometrically between 1 and ``total`` (step j of the n − 1 non-zero ones is the nearest
    integer to ``total ** (j / (n − 2))``, pushed up to stay distinct at the start)."""
    if total < 0 or n < 2:
        raise ValueError(f"need total >= 0 and n >= 2, got total={total}, n={n}")
    if total + 1 <= n:
        return list(range(total + 1))
    m = n - 1                                       # non-zero steps
    targets = [total ** (j / (m - 1)) if m > 1 else total for j in range(m)]
    steps = [0]
    for j, t in enumerate(targets):
        lowest = steps[-1] + 1
        highest = total - (m - 1 - j)               # leave room for the ones after
        steps.append(min(max(round(t), lowest), highest))
    return steps


def pick_nearest(candidates: list[int], targets: list[int]) -> list[int]:
    """For each target, the candidate nearest in log(1 + step), each used at most once; sorted."""
    free, picked = sorted(set(candidates)), []
    for t in targets:
        if not free:
            break
        best = min(free, key=lambda c: abs(math.log1p(c) - math.log1p(t)))
        picked.append(best)
        free.remove(best)
    return sorted(picked)


class TimelineRecorder:
    """Keeps candidate snapshots during a run and writes the timeline at its end.

    ``planned_total``: the steps the run is planned to take (its max steps, or batches × epochs);
    ``n``: snapshots wanted, 2..24 (the checkpoint included). ``observe(step, model)`` after each
    optimiser step (and at step 0) copies the weights when ``step`` is a candidate."""

    def __init__(self, planned_total: int, n: int):
        if not MIN_SNAPSHOTS <= n <= MAX_SNAPSHOTS:
            raise ValueError(f"a timeline keeps {MIN_SNAPSHOTS}..{MAX_SNAPSHOTS} snapshots, got {n}")
        self.n = n
        self.candidates = set(log_steps(max(planned_total, 1), CANDIDATES_PER_SNAPSHOT * n))
        self.kept: dict[int, dict[str, torch.Tensor]] = {}

    def observe(self, step: int, model: torch.nn.Module) -> None:
        if step in self.candidates and step not in self.kept:
            self.kept[step] = {k: v.detach().to("cpu", torch.float16, copy=True)
                               for k, v in model.state_dict().items()}

    def resume_from(self, checkpoint: str | Path, before: int) -> int:
        """Keep the snapshots (steps < ``before``) of the timeline beside a resumed ``checkpoint``,
        so a resumed run's timeline still starts at step 0 (they were stored as int8 deltas: they
        are quantised once more when written). Returns how many were taken (0 when there is no
        timeline or it is refused, which is logged)."""
        from ..checkpoint import CheckpointError
        from ..timeline import load_timeline
        if not timeline_path(checkpoint).is_file():
            return 0
        try:
            snaps = load_timeline(checkpoint)
        except CheckpointError:
            log.exception("resume: the timeline beside %s is refused; the new one starts now", checkpoint)
            return 0
        taken = [(s, m) for s, m in snaps if s < before]
        for step, model in taken:
            self.kept[step] = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
        return len(taken)

    def selection(self, best_step: int) -> list[int]:
        """The kept steps that go into the timeline before the checkpoint at ``best_step``."""
        before = [s for s in self.kept if s < best_step]
        return pick_nearest(before, log_steps(best_step, self.n)[:-1])

    def write(self, checkpoint: CharRNN, checkpoint_path: str | Path,
              val_ids: torch.Tensor | None = None) -> Path:
        """Write ``<checkpoint>.timeline`` for ``checkpoint`` (the best weights; its provenance's
        ``steps`` is the best step). With ``val_ids`` every snapshot's held-out loss
        (:func:`evaluate_loss`, of the stored, decoded weights) goes into the file."""
        best_step = int(checkpoint.provenance.get("steps", 0))
        chosen = [(s, self.kept[s]) for s in self.selection(best_step)]
        path = timeline_path(checkpoint_path)
        save_timeline(checkpoint, chosen, path)
        if val_ids is not None:
            from ..timeline import load_timeline
            losses = [evaluate_loss(m, val_ids) for _, m in load_timeline(path)]
            save_timeline(checkpoint, chosen, path, losses)
        log.info("timeline: %d snapshots at steps %s -> %s", len(chosen) + 1,
                 [s for s, _ in chosen] + [best_step], path)
        return path
