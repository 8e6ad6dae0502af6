"""``python -m rnnviz.training``: train a model and write a checkpoint (see :mod:`rnnviz.training.cli`)."""

import sys

from .cli import main

sys.exit(main())
