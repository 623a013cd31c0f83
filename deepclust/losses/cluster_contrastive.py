"""Cluster-level contrastive loss of Contrastive Clustering, with its marginal-entropy term.

Used by the methods described in docs/methods/htcn.md and docs/methods/dchl.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def marginal_entropy_gap(probabilities: torch.Tensor) -> torch.Tensor:
    """log K + Σ_k m_k log m_k for the batch's cluster marginal m (≥ 0; 0 when m is uniform).

    Contrastive Clustering (Li et al. AAAI 2021), the entropy term H(Y) of Eq. 6, written as
    log K − H(m) so the term is non-negative.
    """
    marginal = probabilities.sum(dim=0)
    marginal = marginal / marginal.sum()
    n_clusters = probabilities.shape[1]
    return math.log(n_clusters) + (marginal * torch.log(marginal.clamp_min(1e-12))).sum()


class ClusterContrastiveLoss(nn.Module):
    """Cluster-level contrastive loss CCL(A, B) (Contrastive Clustering, Li et al. AAAI 2021, Eq. 5-6).

    ``A`` and ``B`` are B×K soft assignments of two views. Their 2K columns are cluster
    representations; column k of A has column k of B as positive and the other 2K − 2 columns as
    negatives under cosine similarity / τ:

        ĥ_k = −log( exp(s(a_k, b_k)/τ) / Σ_{j ≠ k} exp(s(·_k, ·_j)/τ) ),   summed over the 2K columns / 2K,

    plus ``entropy_weight`` × (marginal-entropy gap of A + that of B). HTCN (Eq. for L_clu) and
    DCHL (coarse-grained loss) use this loss with τ = 1.
    """

    def __init__(self, temperature: float = 1.0, entropy_weight: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.entropy_weight = entropy_weight

    def forward(self, assignments_a: torch.Tensor, assignments_b: torch.Tensor) -> torch.Tensor:
        if assignments_a.shape != assignments_b.shape or assignments_a.ndim != 2:
            raise ValueError("cluster contrastive loss expects two B×K assignment matrices of one shape, "
                             f"got {tuple(assignments_a.shape)} and {tuple(assignments_b.shape)}")
        a, b = assignments_a.float(), assignments_b.float()
        n_clusters = a.shape[1]
        columns = F.normalize(torch.cat([a.T, b.T]), dim=1)
        logits = columns @ columns.T / self.temperature
        logits.fill_diagonal_(float("-inf"))
        positives = torch.cat([torch.arange(n_clusters, 2 * n_clusters), torch.arange(n_clusters)]).to(a.device)
        contrastive = F.cross_entropy(logits, positives)
        entropy = marginal_entropy_gap(a) + marginal_entropy_gap(b)
        return contrastive + self.entropy_weight * entropy
