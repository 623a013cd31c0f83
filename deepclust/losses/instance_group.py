"""In-batch fine-grained grouping and instance-group discrimination of DCHL.

Deng, Chen, Huang, Zhu, Wang, Lai, "Deep Clustering with Hybrid-Grained Contrastive and
Discriminative Learning", IEEE TCSVT 34(10), 2024 — the fine-grained cluster branch and its
"dual-level instance-group discrimination" (the self and cross losses L_self and L_cross), which
extends the cross-level instance-group discrimination of CLD (Wang, Liu, Yu, CVPR 2021).

Two pieces:

- :func:`seeded_batch_kmeans` groups the rows of one view's group embeddings into M groups
  inside the batch (k-means seeded by the first M rows, so that group j of view 1 and group j of
  view 2 both start from image j and their indices correspond);
- :class:`InstanceGroupLoss` makes each view's embedding pick, among the *other* view's
  centroids, the index of the group it was assigned to in its own view. With the group
  embeddings as queries it is DCHL's self instance-group discrimination L_self, with the instance
  embeddings as queries the cross instance-group discrimination L_cross.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BatchGroups:
    """The result of :func:`seeded_batch_kmeans` for one view.

    labels: (B,) int64 group index of every row (discrete, no gradient).
    centroids: (M', D) float32 mean of the rows of each group, differentiable with respect to the
        clustered embeddings; 0 for a group left empty. M' = min(M, B).
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
    """k-means inside one batch, seeded by its first rows (DCHL, fine-grained cluster branch).

    Lloyd's algorithm on the rows of ``embeddings`` (B×D) with squared Euclidean distances:
    centroids start as the first M rows; each of the ``n_iterations`` iterations assigns every row
    to its nearest centroid (ties → the lowest index) and replaces each centroid by the mean of
    its rows — a group left empty counts 1, so its centroid becomes 0 (as the reference). The
    returned labels are those of the last assignment and the centroids the means computed from
    them, so every centroid is exactly the mean of its group. Centroids are not re-normalised.

    Gradient: labels are discrete; the final centroids are means of the rows of ``embeddings``
    computed without detaching, so losses on them back-propagate into the embeddings.

    M > B (decision of this implementation): the seeding by the first M rows needs M rows, so
    M' = min(M, B) groups are used — what slicing the first M rows of a smaller batch gives. With
    M' = B every (distinct) row is its own group. Since training batches are drawn in random
    order, "the first M rows" is already a random subset shared by both views.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty B×D matrix, got shape {tuple(embeddings.shape)}")
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, int) or n_iterations < 1:
        raise ValueError(f"n_iterations must be an integer >= 1, got {n_iterations!r}")
    points = embeddings.float()
    n_groups = min(n_groups, points.shape[0])
    with torch.no_grad():
        fixed = points.detach()
        centroids = fixed[:n_groups]
        for _ in range(n_iterations):
            distances = (fixed.unsqueeze(1) - centroids.unsqueeze(0)).pow(2).sum(dim=2)
            labels = distances.argmin(dim=1)
            centroids = _group_means(fixed, labels, n_groups)
    return BatchGroups(labels=labels, centroids=_group_means(points, labels, n_groups))


class InstanceGroupLoss(nn.Module):
    """Instance-group discrimination across two views: the L_self and L_cross equations of DCHL
    (TCSVT 2024, dual-level instance-group discrimination; after CLD, Wang et al. CVPR 2021).

    For queries q1, q2 (B×D) of the two views and the groups (y1, C1), (y2, C2) found by
    :func:`seeded_batch_kmeans` in each view:

        L = ½ [ CE(q2 · C1ᵀ / τ_g, y2) + CE(q1 · C2ᵀ / τ_g, y1) ],   CE averaged over the B rows.

    Each view's query must pick, among the other view's centroids, the index of the group it was
    assigned to in its own view (the indices correspond because both clusterings are seeded by
    the same images). Used twice in DCHL with τ_g = 0.2:

    - self instance-group discrimination L_self: queries = the group-head embeddings g (the
      embeddings that were clustered);
    - cross instance-group discrimination L_cross: queries = the instance-head embeddings z.

    The loss is symmetric in the two views. Queries are used as given (DCHL's are L2-normalised).
    """

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, queries_1: torch.Tensor, queries_2: torch.Tensor,
                groups_1: BatchGroups, groups_2: BatchGroups) -> torch.Tensor:
        if queries_1.shape != queries_2.shape or queries_1.ndim != 2:
            raise ValueError("instance-group loss expects two B×D query matrices of one shape, "
                             f"got {tuple(queries_1.shape)} and {tuple(queries_2.shape)}")
        for name, groups in (("groups_1", groups_1), ("groups_2", groups_2)):
            if groups.labels.shape != queries_1.shape[:1] or groups.centroids.shape[1] != queries_1.shape[1]:
                raise ValueError(f"{name} must hold {queries_1.shape[0]} labels and centroids of dimension "
                                 f"{queries_1.shape[1]}, got labels {tuple(groups.labels.shape)} and "
                                 f"centroids {tuple(groups.centroids.shape)}")
        logits_2 = queries_2.float() @ groups_1.centroids.float().T / self.temperature
        logits_1 = queries_1.float() @ groups_2.centroids.float().T / self.temperature
        return 0.5 * (F.cross_entropy(logits_2, groups_2.labels) + F.cross_entropy(logits_1, groups_1.labels))
