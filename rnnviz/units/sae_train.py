"""Train a sparse autoencoder (:mod:`rnnviz.units.sae`) on one state of a checkpoint and ship it
beside the checkpoint::

    nice -n 10 python -m rnnviz.units.sae_train --checkpoint timemachine-lstm --state h --features 512

The activations are the checkpoint's own states over the **training split** of its corpus (the
corpus named in its provenance, loaded from ``../shared/corpora`` by :mod:`rnnviz.corpora`, put
through its preprocessing, all but the last ``val_fraction``, as rnnviz.training split it), traced
in chunks with the state carried over. R², the dead fraction and the mean L0 are measured on the
**held-out** part (the last ``val_fraction``), which the SAE never saw. Runs on ``--threads`` torch
threads (default 1) and stops training at ``--max-minutes`` (default 9) whatever ``--steps`` says;
the JSON records the steps done, the wall time and the machine's load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from ..baseline import BaselineError, training_split
from ..checkpoint import load_model, resolve_checkpoint
from ..corpora import load_corpus
from ..model import CharRNN
from ..names import act_name
from ..ref import model_ref
from ..trace import trace_ids
from ..vocab import preprocess
from .sae import SAE, SAEError, measure, sae_path, save_sae, train_sae

#: Characters traced at once (memory: a few (chunk, h) float32 tensors per layer).
CHUNK = 20_000


def model_states(model: CharRNN, text: str, layer: int, state: str, chunk: int = CHUNK) -> Tensor:
    """(T, h) activations ``layer{layer}.{state}`` of ``model`` over the preprocessed ``text``, traced
    in chunks from the zero state with the final state of each chunk carried into the next (the
    same numbers as one trace of the whole text)."""
    name = act_name(layer, state)
    ids = model.vocab.encode(text).ids
    out, carry = [], None
    for a in range(0, ids.numel(), chunk):
        cache, carry = trace_ids(model, ids[a:a + chunk], carry, gates=state != "h")
        if name not in cache:
            raise SAEError(f"The model has no state {name!r} (states: {list(model.spec.state_kinds)}).")
        out.append(cache[name].float())
    return torch.cat(out)


def split_text(model: CharRNN, corpora_dir=None) -> tuple[str, str, str]:
    """(training split, held-out part, where they came from), both preprocessed, as the model was
    trained (:func:`rnnviz.baseline.training_split`). Raises SAEError when the corpus is missing."""
    try:
        name, preprocessing, vf, pmax = training_split(model)
        corpus = load_corpus(name, folder=corpora_dir, **({"python_max_chars": pmax} if pmax else {}))
    except (BaselineError, OSError, ValueError) as err:
        raise SAEError(f"The training corpus is not available: {err}") from None
    prepared = preprocess(corpus.text, preprocessing)
    cut = int(len(prepared) * (1 - vf))
    sha = hashlib.sha256(corpus.text.encode("utf-8")).hexdigest()
    same = sha == (model.provenance or {}).get("corpus_sha256", sha)
    return prepared[:cut], prepared[cut:], (
        f"{name} ({preprocessing}-preprocessed): first {cut:,} characters (training split), held-out "
        f"last {len(prepared) - cut:,} (val_fraction {vf:g})" + ("" if same else "; NOTE: corpus sha256 "
                                                                 "differs from the training one"))


def train_for_checkpoint(model: CharRNN, layer: int, state: str, n_features: int, *, l1: float,
                         steps: int, batch: int, lr: float, seed: int, max_seconds: float,
                         max_train_chars: int | None = None, corpora_dir=None, l1_warmup: float = 0.0,
                         lr_decay: float = 0.0) -> SAE:
    """Train on the model's training split and measure on its held-out part (module docstring).
    ``meta`` gets the provenance and figures. Raises SAEError."""
    if not 0 <= layer < model.config.num_layers or state not in model.spec.state_kinds:
        raise SAEError(f"layer must be among 0…{model.config.num_layers - 1} and state among "
                       f"{list(model.spec.state_kinds)}; got {layer!r}, {state!r}.")
    t0, cpu0 = time.monotonic(), time.process_time()
    load0 = os.getloadavg()
    train, held, source = split_text(model, corpora_dir)
    if max_train_chars:
        train = train[-max_train_chars:]
    x = model_states(model, train, layer, state)
    sae = train_sae(x, n_features, l1=l1, steps=steps, batch=batch, lr=lr, seed=seed,
                    deadline=t0 + max_seconds, l1_warmup=l1_warmup, lr_decay=lr_decay)
    figures = measure(sae, model_states(model, held, layer, state))
    sae.meta.update({
        "checkpoint": model.name, "fingerprint": model_ref(model).digest, "layer": layer, "state": state,
        "trace_name": act_name(layer, state), "source": source, "train_chars": len(train),
        "held_out_chars": len(held), "held_out": figures, "wall_seconds": round(time.monotonic() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "threads": torch.get_num_threads(), "load_average_before": [round(v, 2) for v in load0],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "command": "python -m rnnviz.units.sae_train " + " ".join(sys.argv[1:])})
    return sae


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnnviz.units.sae_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a shipped checkpoint's name or a .safetensors path")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--state", default="h", help="h (H_t) or, for an LSTM, c (C_t)")
    p.add_argument("--features", type=int, default=512, help="dictionary size F")
    p.add_argument("--l1", type=float, default=0.003, help="L1 coefficient on the activations (normalised inputs)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--l1-warmup", type=float, default=0.0,
                   help="raise the L1 coefficient from 0 over this first fraction of the training")
    p.add_argument("--lr-decay", type=float, default=0.0,
                   help="let the learning rate fall to 0 over this last fraction of the training")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--max-minutes", type=float, default=9.0, help="stop training after this long")
    p.add_argument("--max-train-chars", type=int, default=None, help="use only the last N training characters")
    p.add_argument("--checkpoint-dir", default=None, help="where shipped checkpoints are (default: the repo's)")
    p.add_argument("--corpora-dir", default=None, help="where the corpora are (default: ../shared/corpora)")
    p.add_argument("--out", default=None, help="output .sae.safetensors (default: beside the checkpoint)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        model = load_model(args.checkpoint, args.checkpoint_dir)
        sae = train_for_checkpoint(model, args.layer, args.state, args.features, l1=args.l1, steps=args.steps,
                                   batch=args.batch, lr=args.lr, seed=args.seed,
                                   max_seconds=60 * args.max_minutes, max_train_chars=args.max_train_chars,
                                   corpora_dir=args.corpora_dir, l1_warmup=args.l1_warmup,
                                   lr_decay=args.lr_decay)
    except (SAEError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else sae_path(resolve_checkpoint(args.checkpoint, args.checkpoint_dir),
                                                   args.layer, args.state)
    save_sae(sae, out)
    h = sae.meta["held_out"]
    print(f"{out}: F={sae.n_features}, steps {sae.meta['steps_done']}/{sae.meta['steps']}, "
          f"{sae.meta['wall_seconds']} s; held-out R² {h['r2']:.4f}, dead {h['dead_fraction']:.3f}, "
          f"mean L0 {h['mean_l0']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
