"""Gradient dynamics across long backprop chains (being split into one module per concern)."""

from .chain import *  # noqa: F401,F403
from .chain import _SpectralBatch  # noqa: F401
