"""Shortcut: ``deepclust.metrics`` re-exports :mod:`deepclust.evaluation.metrics`."""

from deepclust.evaluation.metrics import *  # noqa: F403
from deepclust.evaluation.metrics import __all__  # noqa: F401
