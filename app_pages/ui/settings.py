"""The operator's settings: the one place the app reads the environment.

=========================== ========================================== ===========================
Variable                    What it sets                               Default
=========================== ========================================== ===========================
``RNNVIZ_CHECKPOINT_DIR``   folder of the checkpoints the app lists     the repository's
                                                                        ``checkpoints/``
``RNNVIZ_CORPORA``          folder of the training corpora              ``../shared/corpora``
                            (``<name>.txt``; the Units view's samples)  beside the repository
``RNNVIZ_REQUEST_SECONDS``  estimated seconds one heavy request may     2
                            take (requests are thinned to fit; stopped
                            at 4× this, at least 1 s)
``RNNVIZ_TRAIN_WORKERS``    training runs that train at once            1
                            (the others queue)
``RNNVIZ_TRAIN_MAX_SECONDS`` wall-clock cap of one training run         600
=========================== ========================================== ===========================

:func:`settings` reads them once per process into a frozen :class:`Settings`; a bad value stops
the app with a :class:`SettingsError` naming the variable, the value and what is accepted. The
library (``rnnviz``) never reads the environment: the app passes these values in. The command-line
tools read the same variables as their argparse defaults.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from rnnviz.checkpoint import CHECKPOINT_DIR
from rnnviz.corpora import CORPORA_DIR
from rnnviz.serving.cost import REQUEST_SECONDS
from rnnviz.training.limits import MAX_TRAIN_SECONDS

log = logging.getLogger(__name__)

#: Largest accepted RNNVIZ_REQUEST_SECONDS (an hour: beyond it a request is not interactive).
MAX_REQUEST_SECONDS = 3600.0
#: Largest accepted RNNVIZ_TRAIN_WORKERS.
MAX_TRAIN_WORKERS = 64
#: Largest accepted RNNVIZ_TRAIN_MAX_SECONDS (a day).
MAX_TRAIN_SECONDS_SETTING = 86_400.0


class SettingsError(ValueError):
    """An environment variable of the table above holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """The operator's settings (see the module docstring for the variables)."""

    checkpoint_dir: Path = CHECKPOINT_DIR
    corpora_dir: Path = CORPORA_DIR
    request_seconds: float = REQUEST_SECONDS
    train_workers: int = 1
    train_max_seconds: float = MAX_TRAIN_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings from ``environ`` (unset or empty variables keep their defaults)."""
        d = cls()
        return cls(
            checkpoint_dir=_folder(environ, "RNNVIZ_CHECKPOINT_DIR", d.checkpoint_dir),
            corpora_dir=_folder(environ, "RNNVIZ_CORPORA", d.corpora_dir, must_exist=False),
            request_seconds=_number(environ, "RNNVIZ_REQUEST_SECONDS", d.request_seconds,
                                    MAX_REQUEST_SECONDS, "seconds"),
            train_workers=int(_number(environ, "RNNVIZ_TRAIN_WORKERS", d.train_workers,
                                      MAX_TRAIN_WORKERS, "a whole number of runs", whole=True)),
            train_max_seconds=_number(environ, "RNNVIZ_TRAIN_MAX_SECONDS", d.train_max_seconds,
                                      MAX_TRAIN_SECONDS_SETTING, "seconds"),
        )


def _folder(environ: Mapping[str, str], name: str, default: Path, must_exist: bool = True) -> Path:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    path = Path(raw).expanduser()
    if must_exist and not path.is_dir():
        raise SettingsError(f"{name}={raw!r} is not a folder on this machine; point it at the "
                            f"folder holding the .safetensors files, or unset it for {default}.")
    return path


def _number(environ: Mapping[str, str], name: str, default: float, top: float, unit: str,
            whole: bool = False) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= top:   # also refuses nan
        span = f"between 1 and {top:g}" if whole else f"above 0 and at most {top:g}"
        raise SettingsError(f"{name}={raw!r} is not usable: give {unit} {span}, or unset it "
                            f"for the default {default:g}.")
    return value


@functools.cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use (a SettingsError is
    logged and raised again on every call until the environment is fixed)."""
    try:
        return Settings.from_environ(os.environ)
    except SettingsError as err:
        log.error("%s", err)
        raise
