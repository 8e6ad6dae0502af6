"""Write the unit-finder statistics sidecar (``checkpoints/<name>.units.json``) of shipped checkpoints.

Run from the repository root, with the corpora present (``../shared/corpora``, ``$RNNVIZ_CORPORA``
or ``--corpora DIR``)::

    python -m tools.unit_stats [NAME ...]

See :mod:`rnnviz.units.stats`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rnnviz.checkpoint import list_checkpoints, load_model
from rnnviz.corpora import CORPORA_DIR
from rnnviz.units import write_unit_stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.unit_stats", description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", type=Path, default=os.environ.get("RNNVIZ_CORPORA") or CORPORA_DIR,
                    help="folder of the training corpora (default: $RNNVIZ_CORPORA or ../shared/corpora)")
    ap.add_argument("names", nargs="*", help="checkpoint names (default: all shipped)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    for info in list_checkpoints():
        if args.names and info.name not in args.names:
            continue
        path = write_unit_stats(load_model(info.path), info.path, corpora_dir=args.corpora)
        print(f"{info.name}: {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
