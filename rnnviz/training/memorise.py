"""When a run memorises its text: validation stops improving while the training loss still falls
(issue 28: validation flat at ~1.6 while the training loss fell to 0.1, and nothing said so)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Memorising:
    """Validation's best was at ``since`` (``best_val``); the training loss fell from
    ``train_then`` to ``train_now`` after it while validation is now ``val_now``."""

    since: int
    best_val: float
    val_now: float
    train_then: float
    train_now: float

    def sentence(self) -> str:
        return (f"The model is memorising the text: validation loss has not improved since step "
                f"{self.since:,} ({self.best_val:.3f} → {self.val_now:.3f} nats/char) while the training "
                f"loss fell from {self.train_then:.3f} to {self.train_now:.3f}. The best-validation "
                f"weights (step {self.since:,}) generalise best.")


def memorising(history: list[dict], patience: int = 2, min_drop: float = 0.05) -> Memorising | None:
    """The evaluations ``history`` (rows with step, train_loss, val_loss, in order) say the run
    memorises when the best validation loss is at least ``patience`` evaluations old and the
    training loss has fallen by ``min_drop`` nats/char or more since then. Else None."""
    rows = [r for r in history if r.get("step") and r.get("val_loss") == r.get("val_loss")
            and r.get("val_loss") is not None and r.get("train_loss") is not None]
    if len(rows) < patience + 1:
        return None
    best = min(range(len(rows)), key=lambda i: (rows[i]["val_loss"], i))
    if len(rows) - 1 - best < patience:
        return None
    then, now = rows[best], rows[-1]
    if then["train_loss"] - now["train_loss"] < min_drop:
        return None
    return Memorising(int(then["step"]), float(then["val_loss"]), float(now["val_loss"]),
                      float(then["train_loss"]), float(now["train_loss"]))
