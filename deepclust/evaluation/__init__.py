"""Evaluation: clustering metrics (ACC/NMI/ARI, collapse statistics)."""

from .metrics import (
    adjusted_rand_index,
    cluster_accuracy,
    collapse_statistics,
    evaluate_clustering,
    hungarian_mapping,
    kl_to_prior,
    normalized_mutual_info,
)

__all__ = [
    "cluster_accuracy",
    "hungarian_mapping",
    "normalized_mutual_info",
    "adjusted_rand_index",
    "collapse_statistics",
    "kl_to_prior",
    "evaluate_clustering",
]
