"""Train a character-level RNN and write a shippable checkpoint.

    python -m rnnviz.training --corpus timemachine --preprocessing d2l --cell lstm --hidden 256 \\
        --out checkpoints/timemachine-lstm.safetensors

(``--text FILE`` trains on any UTF-8 file instead of a named corpus, see :mod:`rnnviz.corpora`.)

Data
----
The text is loaded, preprocessed (``--preprocessing none|d2l``, see :func:`rnnviz.vocab.preprocess`)
and split: the **first 90 %** of the characters (``split = int(len(text) * (1 - val_fraction))``)
train, the **last 10 %** (``text[split:]``) is held out for validation. The vocabulary is built
from the whole preprocessed text (most frequent first, as d2l); characters seen fewer than
``--min-count`` times map to ``<unk>``.

Minibatches follow d2l §9.3 (truncated BPTT over ``--num-steps`` characters, shapes (T, B)):

* ``sequential``: each epoch drops a random offset in ``[0, num_steps)``, cuts the rest into
  ``batch_size`` contiguous streams and walks them window by window; the hidden state is carried
  from one window to the next (detached), and starts at zero each epoch.
* ``random``: each epoch drops a random offset, cuts the rest into subsequences of ``num_steps``
  characters and shuffles them; every minibatch starts from a zero state.

Validation loss (``val_loss`` in every checkpoint) — exactly :func:`evaluate_loss`
-------------------------------------------------------------------------------------
Let ``ids`` be the validation text encoded with the model's vocabulary and ``n = len(ids)``. With
``S = VAL_STREAMS = 16`` (or ``S = 1`` when ``n - 1 < 16``) and ``L = (n - 1) // S``, stream ``s``
reads ``ids[s*L : s*L + L]`` starting from an all-zero state and predicts ``ids[s*L+1 : s*L+L+1]``.
``val_loss`` is the mean over all ``S*L`` predictions of ``-log softmax(O_t)[next char]`` in nats
(no dropout; the last ``n - 1 - S*L < S`` characters are not predicted). ``val_perplexity`` is
``exp(val_loss)``; bits/char is ``val_loss / ln 2``.

Optimisation
------------
Adam (default) or SGD (``--momentum``), global gradient-norm clipping (``--clip``), dropout between
layers and before the output layer (``--dropout``), evaluation every ``--eval-every`` steps (0: once
per epoch), learning-rate decay by ``--lr-decay`` whenever validation loss does not improve, early
stopping after ``--patience`` evaluations without improvement. The checkpoint always holds the
**best** weights seen (lowest validation loss). ``--max-steps``, ``--max-epochs`` and
``--max-minutes`` (wall clock of the whole run) also stop training.

Reproducibility and resume
--------------------------
All randomness comes from ``--seed``: the initial weights (``build_model(config, seed)``), each
epoch's offset/shuffle (a generator seeded from (seed, epoch)) and the dropout masks of each step
(the model's own dropout generator is seeded from (seed, step) before every step; torch's global
RNG is never read or changed, so concurrent runs and pages cannot change each other's numbers). A run's latest state is written next to the checkpoint as
``<checkpoint>.trainstate`` (a safetensors file, no pickle): the latest weights, the optimiser
state (Adam moments / SGD momentum), the carried BPTT state, the current learning rate, the step /
epoch / position counters, the early-stopping counters, the running train-loss sums and the loss
history. ``--resume CKPT`` restores all of it (and the best weights from CKPT itself), so a run
stopped at step k and resumed to step N gives the same weights as an uninterrupted run to step N
(on the same device and thread count). The stopping limits and ``--out`` come from the new command.

Outputs
-------
``--out X.safetensors`` (best weights + config + provenance, via :func:`rnnviz.save_checkpoint`),
``X.curves.csv`` (one row per evaluation: step, epoch, chars, seconds, lr, train_loss, val_loss),
``X.trainstate`` (for ``--resume``; not shipped), ``X.timeline`` (``--timeline N``, default 16:
N weight snapshots spaced logarithmically from step 0 to the checkpoint's step, with their held-out
losses; :mod:`rnnviz.timeline`, ``rnnviz.load_timeline``) and, from the command line, ``X.units.json`` (the
unit finder's per-unit statistics on the held-out sample, :mod:`rnnviz.units.stats`, so the Units
view ranks units without the corpus).

Code
----
This module is the command line and :func:`train`; the loop is :class:`rnnviz.training.Trainer`
(drivable step by step), over :mod:`rnnviz.training.config` (TrainConfig), :mod:`rnnviz.training.data`
(vocabulary, split, minibatches), :mod:`rnnviz.training.evaluate` (:func:`evaluate_loss`) and
:mod:`rnnviz.training.state` (TrainState, History, the .trainstate and curves files).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys

from ..corpora import CORPORA_DIR, Corpus
from ..model import CharRNN
from .config import TrainConfig
from .data import load_training_text
from .state import History
from .trainer import Trainer

#: The module the command line runs as (checkpoints written before the package move record
#: ``rnnviz.train``; :func:`reproduce_command` prints the current name).
CLI_MODULE = "rnnviz.training"



def train(cfg: TrainConfig, text: str | None = None, *, corpus: Corpus | None = None,
          argv: list[str] | None = None) -> tuple[CharRNN, History]:
    """Train per ``cfg``; returns (best model in eval mode, history). Writes ``cfg.out`` if set.

    text: the raw training text (overrides cfg.text/cfg.corpus; name "text", for tests).
    """
    trainer = Trainer(cfg, text, corpus=corpus, argv=argv)
    trainer.run()
    return trainer.finish()


def reproduce_command(info) -> str:
    """The recorded command with the wall-clock limit replaced by the step count the run reached
    (``--max-steps total_steps --max-minutes 0``) and ``--out`` pointing into checkpoints/: on the
    same machine type and thread count this reruns the same steps (wall-clock stops do not)."""
    cmd = list(info.provenance["command"])
    if cmd[1:3] == ["-m", "rnnviz.train"]:
        cmd[2] = CLI_MODULE
    out, i = [], 0
    while i < len(cmd):
        if cmd[i] in ("--max-minutes", "--max-steps", "--out"):
            i += 2
            continue
        out.append(cmd[i])
        i += 1
    out += ["--max-steps", str(info.provenance["total_steps"]), "--max-minutes", "0",
            "--out", f"checkpoints/{info.name}.safetensors"]
    return shlex.join(out)


# =============================================================================== CLI
def build_parser() -> argparse.ArgumentParser:
    """Every TrainConfig field as a flag, plus ``--corpora`` (where named corpora are looked up;
    the environment's RNNVIZ_CORPORA is its default)."""
    p = argparse.ArgumentParser(prog=f"python -m {CLI_MODULE}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpora", default=os.environ.get("RNNVIZ_CORPORA") or str(CORPORA_DIR),
                   help="folder holding the named corpora (<name>.txt); $RNNVIZ_CORPORA sets the default")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kw = {"help": f.metadata.get("help", ""), "default": f.default}
        if f.type in (bool, "bool"):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = type(f.default)
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
        p.add_argument(flag, **kw)
    return p


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str]:
    """(the TrainConfig of the command line, the corpus folder)."""
    ns = vars(build_parser().parse_args(argv))
    corpora = ns.pop("corpora")
    return TrainConfig(**ns), corpora


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    return parse_args(argv)[0]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, corpora = parse_args(argv)
    command = ["python", "-m", CLI_MODULE, *argv]
    corpus = load_training_text(cfg, corpora)
    model, history = train(cfg, corpus=corpus, argv=command)
    from ..units.stats import write_after_training   # the Units view's numbers, beside the checkpoint
    write_after_training(cfg.out, corpus.text)
    s = history.summary
    print(f"best val loss {s['val_loss']:.4f} nats/char (perplexity {s['val_perplexity']:.3f}, "
          f"{s['val_bits_per_char']:.3f} bits/char) at step {s['steps']} of {s['total_steps']}; "
          f"{s['train_seconds']:.0f} s, {s['chars_per_second']:,.0f} chars/s, stopped: {s['stopped']}; "
          f"wrote {cfg.out}", file=sys.stderr)
    return 0
