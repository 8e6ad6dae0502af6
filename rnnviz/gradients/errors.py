"""The one exception of :mod:`rnnviz.gradients`."""

from __future__ import annotations


class GradientError(ValueError):
    """A gradient computation cannot run as asked; ``str(err)`` says why and what to change."""
