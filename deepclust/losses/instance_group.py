"""Instance-group discrimination of DCHL (its self and cross losses L_self and L_cross).

Deng, Chen, Huang, Zhu, Wang, Lai, "Deep Clustering with Hybrid-Grained Contrastive and
Discriminative Learning", IEEE TCSVT 34(10), 2024 — the "dual-level instance-group
discrimination", which extends the cross-level instance-group discrimination of CLD (Wang, Liu,
Yu, CVPR 2021). The groups come from :func:`deepclust.cluster.seeded_batch_kmeans`; see
``docs/methods/dchl.md``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepclust.cluster.batch_kmeans import BatchGroups


class InstanceGroupLoss(nn.Module):
    """Instance-group discrimination across two views: the L_self and L_cross equations of DCHL
    (TCSVT 2024, dual-level instance-group discrimination; after CLD, Wang et al. CVPR 2021).

    For queries q1, q2 (B×D) of the two views and the groups (y1, C1), (y2, C2) found by
    :func:`~deepclust.cluster.seeded_batch_kmeans` in each view:

        L = ½ [ CE(q2 · C1ᵀ / τ_g, y2) + CE(q1 · C2ᵀ / τ_g, y1) ],   CE averaged over the B rows.

    The cross-entropies run over all M centroid slots, as in the reference implementation: a
    group left empty has the zero centroid, so its class keeps logit 0 and still counts in the
    softmax's denominator (with M > B at least M − B such classes).

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
