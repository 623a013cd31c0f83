"""HTCN's cluster-level loss: online cluster assignments contrasted with the target's, view 3 the hub.

Used by the method described in docs/methods/htcn.md.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepclust.losses.cluster_contrastive import ClusterContrastiveLoss
from deepclust.losses.htcn_hub_prediction import HUB_PAIRS, check_three_views


class HubClusterConsistencyLoss(nn.Module):
    """Cluster consistency loss L_clu of HTCN (Deng, Huang, Wang, "Heterogeneous Tri-stream Clustering
    Network", Neural Processing Letters 2023, arXiv:2301.04451; the cluster-level loss enforcing
    consistency between the online and the target cluster representations):

        L_clu = ¼ [ CCL(o1, s3) + CCL(o2, s3) + CCL(o3, s1) + CCL(o3, s2) ],

    where o_v are the online cluster assignments (B×K softmax) of views 1-3, s_v the target's, and
    CCL is Contrastive Clustering's cluster-level contrastive loss with its marginal-entropy term
    (Li et al. AAAI 2021, Eq. 5-6; :class:`~deepclust.losses.ClusterContrastiveLoss`), τ_c = 1.
    ``target`` assignments are used as given (the caller computes them without gradient); the
    entropy term of a detached target matrix is then a constant, kept for value parity with the paper.
    """

    def __init__(self, temperature: float = 1.0, entropy_weight: float = 1.0):
        super().__init__()
        self.contrastive = ClusterContrastiveLoss(temperature, entropy_weight)

    def forward(self, online: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
        check_three_views(online, target, "HubClusterConsistencyLoss")
        return sum(self.contrastive(online[o], target[t]) for o, t in HUB_PAIRS) / len(HUB_PAIRS)
