"""k-means inside one batch, seeded by the batch's first rows: DCHL's fine-grained groups.

Deng, Chen, Huang, Zhu, Wang, Lai, "Deep Clustering with Hybrid-Grained Contrastive and
Discriminative Learning", IEEE TCSVT 34(10), 2024 — the fine-grained cluster branch: the rows of
one view's group embeddings are grouped into M groups inside the batch, by k-means seeded with
the first M rows, so that group j of view 1 and group j of view 2 both start from image j and
their indices correspond. :class:`~deepclust.losses.instance_group.InstanceGroupLoss` trains on
the groups; see also ``docs/methods/dchl.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BatchGroups", "seeded_batch_kmeans"]


@dataclass
class BatchGroups:
    """The result of :func:`seeded_batch_kmeans` for one view.

    labels: (B,) int64 group index of every row (discrete, no gradient).
    centroids: (M, D) float32 mean of the rows of each group, differentiable with respect to the
        clustered embeddings; 0 for a group left empty (with M > B at least M − B groups are empty).
    """

    labels: torch.Tensor
    centroids: torch.Tensor


def _group_means(points: torch.Tensor, labels: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-group mean of ``points``; an empty group counts 1, so its centroid is 0."""
    sums = torch.zeros(n_groups, points.shape[1], dtype=points.dtype, device=points.device)
    sums = sums.index_add(0, labels, points)
    counts = torch.bincount(labels, minlength=n_groups).clamp_min(1).to(points.dtype)
    return sums / counts.unsqueeze(1)


def seeded_batch_kmeans(embeddings: torch.Tensor, n_groups: int, n_iterations: int = 5) -> BatchGroups:
    """k-means with M group slots inside one batch, seeded by its first rows (DCHL, fine-grained
    cluster branch).

    Lloyd's algorithm on the rows of ``embeddings`` (B×D) with squared Euclidean distances, as the
    reference implementation runs it: the first assignment is to the seeds, the first min(M, B)
    rows; every later one is to all M centroids. Each of the ``n_iterations`` iterations assigns
    every row to its nearest centroid (ties → the lowest index) and then replaces each of the M
    centroids by the mean of its rows — a group left empty counts 1, so its centroid becomes the
    zero vector. The returned labels are those of the last assignment and the centroids the means
    computed from them, so every centroid is exactly the mean of its group. Centroids are not
    re-normalised.

    M > B: the seeds are the B rows, and the M − B slots without a seed start as zero vectors.
    A zero centroid is a centroid like any other: from the second assignment on, a row nearer to
    the origin than to every other centroid joins it. For L2-normalised rows the distance to a
    zero centroid is 1 and to the row's own seed 0, so with M ≥ B every (distinct) row stays its
    own group and the last M − B centroids stay 0. The loss on the groups then runs over all M
    classes, the empty ones with logit 0 (:class:`~deepclust.losses.instance_group.InstanceGroupLoss`).

    Gradient: labels are discrete; the final centroids are means of the rows of ``embeddings``
    computed without detaching, so losses on them back-propagate into the embeddings. Since
    training batches are drawn in random order, "the first rows" are already a random subset
    shared by both views.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty B×D matrix, got shape {tuple(embeddings.shape)}")
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, int) or n_iterations < 1:
        raise ValueError(f"n_iterations must be an integer >= 1, got {n_iterations!r}")
    points = embeddings.float()
    with torch.no_grad():
        fixed = points.detach()
        centroids = fixed[:n_groups]
        for _ in range(n_iterations):
            distances = (fixed.unsqueeze(1) - centroids.unsqueeze(0)).pow(2).sum(dim=2)
            labels = distances.argmin(dim=1)
            centroids = _group_means(fixed, labels, n_groups)
    return BatchGroups(labels=labels, centroids=_group_means(points, labels, n_groups))
