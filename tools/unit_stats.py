"""Write the unit-finder statistics sidecar (``checkpoints/<name>.units.json``) of shipped checkpoints.

Run from the repository root, with the corpora present (``../shared/corpora`` or ``$RNNVIZ_CORPORA``)::

    python -m tools.unit_stats [NAME ...]

See :mod:`rnnviz.units.stats`.
"""

from __future__ import annotations

import sys

from rnnviz.checkpoint import list_checkpoints, load_model
from rnnviz.units import write_unit_stats


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    for info in list_checkpoints():
        if names and info.name not in names:
            continue
        path = write_unit_stats(load_model(info.path), info.path)
        print(f"{info.name}: {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
