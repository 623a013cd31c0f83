"""Evaluation: clustering metrics (ACC/NMI/ARI, collapse statistics)."""

from .metrics import *  # noqa: F403
from .metrics import __all__  # noqa: F401
