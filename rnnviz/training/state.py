"""A run's counters (TrainState), its loss history, and the files that persist them.

``<checkpoint>.trainstate`` (safetensors, no pickle) holds the latest weights, the optimiser state,
the carried BPTT state and, as JSON metadata, the TrainState counters; ``<checkpoint>.curves.csv``
holds one row per evaluation.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save_file as st_save_file

CURVE_COLUMNS = ["step", "epoch", "chars", "seconds", "lr", "train_loss", "val_loss"]

# carried BPTT state: per layer (h (B, H), c (B, H) or None), or None for a zero start
Carry = list[tuple[torch.Tensor, torch.Tensor | None]] | None


@dataclass
class TrainState:
    """Every counter of a run: what ``--resume`` restores besides the tensors.

    ``history`` holds one row per evaluation (keys: CURVE_COLUMNS); ``loss_sum``/``loss_n`` the
    running train loss since the last scheduled evaluation; times are seconds of wall clock
    (``step_seconds``: inside optimiser steps only); ``stopped``: why the last run ended ("" while
    it may go on).
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0                 # index of the next minibatch within the epoch
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0             # scheduled evaluations since the last improvement
    lr: float = 0.0
    loss_sum: float = 0.0
    loss_n: int = 0
    chars: int = 0
    train_seconds: float = 0.0
    step_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    stopped: str = ""

    @property
    def val_losses(self) -> list[float]:
        return [r["val_loss"] for r in self.history]

    @property
    def train_losses(self) -> list[float]:
        """Mean train loss of the steps before each evaluation (one per history row)."""
        return [r["train_loss"] for r in self.history]

    @property
    def mean_train_loss(self) -> float:
        """Mean train loss since the last scheduled evaluation (nan if no step since)."""
        return self.loss_sum / self.loss_n if self.loss_n else float("nan")

    @property
    def chars_per_second(self) -> float:
        return self.chars / max(self.step_seconds, 1e-9)

    def to_counters(self) -> dict:
        """The JSON-able dict stored in the .trainstate file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_counters(cls, counters: dict) -> TrainState:
        return cls(**counters)


@dataclass
class History:
    """One row per evaluation (see ``rows``), plus the run summary once finished."""

    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def val_losses(self) -> list[float]:
        return [r["val_loss"] for r in self.rows]

    @property
    def train_losses(self) -> list[float]:
        return [r["train_loss"] for r in self.rows]


def state_path(checkpoint: str | os.PathLike) -> Path:
    return Path(str(checkpoint) + ".trainstate")


def curves_path(checkpoint: str | os.PathLike) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".curves.csv")


def write_curves(path: Path, rows: list[dict]) -> None:
    """Write the history rows as CSV (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def save_trainstate(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    carry: Carry, state: TrainState) -> None:
    """Write the latest weights, optimiser state, carry and counters to ``path`` (atomically)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_sd = optimizer.state_dict()
    for idx, st in opt_sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{key}"] = val.detach().cpu().contiguous()
    if carry is not None:
        for layer, (h, c) in enumerate(carry):
            tensors[f"carry.{layer}.h"] = h.detach().cpu().contiguous()
            if c is not None:
                tensors[f"carry.{layer}.c"] = c.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_sd["param_groups"]]
    meta = {"counters": state.to_counters(), "param_groups": groups}
    tmp = path.with_name(path.name + ".tmp")
    st_save_file(tensors, str(tmp), metadata={"rnnviz_trainstate": json.dumps(meta)})
    os.replace(tmp, path)


def load_trainstate(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> tuple[TrainState, Carry]:
    """Load ``path`` into ``model`` and ``optimizer``; returns (counters, carry on ``device``)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["rnnviz_trainstate"])
    tensors = st_load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    sd = optimizer.state_dict()
    opt_state: dict = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = val
    for g, saved in zip(sd["param_groups"], meta["param_groups"]):
        g.update(saved)
    optimizer.load_state_dict({"state": opt_state, "param_groups": sd["param_groups"]})
    carry = None
    layers = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("carry.")})
    if layers:
        carry = [(tensors[f"carry.{i}.h"].to(device),
                  tensors[f"carry.{i}.c"].to(device) if f"carry.{i}.c" in tensors else None)
                 for i in layers]
    return TrainState.from_counters(meta["counters"]), carry
