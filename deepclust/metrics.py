"""Shortcut: ``deepclust.metrics`` re-exports :mod:`deepclust.evaluation.metrics`."""

from deepclust.evaluation.metrics import (  # noqa: F401
    __all__,
    adjusted_rand_index,
    cluster_accuracy,
    collapse_statistics,
    evaluate_clustering,
    hungarian_mapping,
    normalized_mutual_info,
)
