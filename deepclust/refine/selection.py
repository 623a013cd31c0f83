"""Class-balanced selection of confident pseudo-labels, and the class means a head starts from."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepclust.engine.config import ConfigError

#: ``refine.selection.rule``: how the per-cluster count c is found from the predicted cluster sizes n_k.
COUNT_RULES = ("smallest", "mean")


@dataclass
class Selection:
    """labels: (N,) argmax cluster; confidence: (N,) its probability; selected: (N,) bool;
    per_cluster: the count c each cluster may contribute."""

    labels: torch.Tensor
    confidence: torch.Tensor
    selected: torch.Tensor
    per_cluster: int


def check_selection(options: dict) -> dict:
    """The ``refine.selection`` section checked: rule, fraction in (0, 1], threshold in [0, 1]."""
    rule, fraction, threshold = options["rule"], options["fraction"], options["threshold"]
    if rule not in COUNT_RULES:
        raise ConfigError(f"refine.selection.rule must be one of {', '.join(COUNT_RULES)}, got {rule!r}")
    for key, value, low_open in (("fraction", fraction, True), ("threshold", threshold, False)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                (0 < value <= 1) if low_open else (0 <= value <= 1)):
            bounds = "(0, 1]" if low_open else "[0, 1]"
            raise ConfigError(f"refine.selection.{key} must be a number in {bounds}, got {value!r}")
    return {"rule": rule, "fraction": float(fraction), "threshold": float(threshold)}


def balanced_selection(probabilities: torch.Tensor, *, rule: str = "smallest", fraction: float = 0.5,
                       threshold: float = 0.0) -> Selection:
    """Per cluster, its most confident images up to one count c shared by every cluster.

    Image i's pseudo-label is argmax_k p_ik and its confidence max_k p_ik. With n_k the images
    labelled k, c = max(1, ⌊fraction · n⌋) where n is the smallest non-zero n_k (``rule="smallest"``:
    every cluster that has images gives exactly c, or all its eligible images) or N / K
    (``rule="mean"``: no cluster gives more than c). Only images with confidence ≥ ``threshold``
    are eligible; within a cluster the most confident come first, ties in index order.
    """
    check_selection({"rule": rule, "fraction": fraction, "threshold": threshold})
    if probabilities.dim() != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"probabilities must be (N, K) with N >= 1, got shape {tuple(probabilities.shape)}")
    n_samples, n_clusters = probabilities.shape
    confidence, labels = probabilities.float().max(dim=1)
    sizes = torch.bincount(labels, minlength=n_clusters)
    base = int(sizes[sizes > 0].min()) if rule == "smallest" else n_samples / n_clusters
    per_cluster = max(1, math.floor(fraction * base))
    by_confidence = torch.sort(confidence, descending=True, stable=True).indices
    order = by_confidence[torch.sort(labels[by_confidence], stable=True).indices]  # cluster, then confidence
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(n_samples, device=labels.device) - starts[labels[order]]
    selected = torch.zeros(n_samples, dtype=torch.bool, device=labels.device)
    selected[order] = (rank < per_cluster) & (confidence[order] >= threshold)
    return Selection(labels=labels, confidence=confidence, selected=selected, per_cluster=per_cluster)


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, selected: torch.Tensor, n_clusters: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) unit-length means of the unit-length embeddings of the selected images of each
    cluster, and a (K,) bool of the clusters that have any (their rows are 0 otherwise)."""
    units = F.normalize(embeddings.float(), dim=1)[selected]
    chosen = labels[selected]
    sums = torch.zeros(n_clusters, units.shape[1], device=units.device).index_add_(0, chosen, units)
    present = torch.bincount(chosen, minlength=n_clusters) > 0
    return F.normalize(sums, dim=1), present
