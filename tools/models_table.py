"""Doc generator: the table of shipped models (docs/MODELS.md) and their reproduce commands.

    python -m tools.models_table              # the markdown table, read from checkpoints/*.safetensors
    python -m tools.models_table --commands   # the docs/MODELS.md "Reproduce" block

Both are read from the checkpoints' own metadata (config and provenance); paste the output between
the ``<!-- table:start -->`` / ``<!-- commands:start -->`` markers of docs/MODELS.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rnnviz.checkpoint import list_checkpoints
from rnnviz.training import reproduce_command

HEADER = ("| name | cell | layers×H | corpus | preprocessing | val loss (nats/char) | val perplexity "
          "| bits/char | steps | training time | threads | chars/s | size |")


def models_table(directory: str | os.PathLike | None = None) -> str:
    """The docs/MODELS.md table, read from the shipped checkpoints' metadata."""
    lines = [HEADER, "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for info in list_checkpoints(Path(directory) if directory else None):
        c, p = info.config, info.provenance
        mb = info.path.stat().st_size / 2**20
        lines.append(f"| {info.name} | {c.cell} | {c.num_layers}×{c.hidden_size} | {p.get('corpus')} "
                     f"| {c.preprocessing} | {p['val_loss']:.4f} | {p['val_perplexity']:.3f} "
                     f"| {p['val_bits_per_char']:.3f} | {p['steps']} | {p['train_seconds'] / 60:.1f} min "
                     f"| {p['threads']} | {p['chars_per_second']:,.0f} | {mb:.1f} MiB |")
    return "\n".join(lines)


def reproduce_commands(directory: str | os.PathLike | None = None) -> str:
    """One code block per shipped checkpoint with the command that replays its run (marked
    ``no-run`` for tests/test_docs.py: minutes to an hour of training; its options are checked)."""
    blocks = [f"```bash no-run: a whole training run\n# {info.name}\n{reproduce_command(info)}\n```"
              for info in list_checkpoints(Path(directory) if directory else None)]
    return "\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.models_table", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=None, help="checkpoint folder (default: the shipped checkpoints/)")
    p.add_argument("--commands", action="store_true", help="print the reproduce commands instead")
    args = p.parse_args(argv)
    print(reproduce_commands(args.dir) if args.commands else models_table(args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
