"""SCAN's clustering loss: neighbours in a representation should share a cluster.

Used by the refine stage's ``objective: neighbours`` (docs/REFINE_AND_ENSEMBLE.md).
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from deepclust.losses.cluster_contrastive import marginal_entropy_gap


class NeighbourConsistencyLoss(nn.Module):
    """SCAN's loss (Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels", ECCV 2020, Eq. 2).

    ``anchors`` and ``neighbours`` are B×K cluster probabilities Φ(X) of B images and Φ(N_X) of
    one mined neighbour of each:

        Λ = −(1/B) Σ_X log⟨Φ(X), Φ(N_X)⟩ + λ Σ_k m_k log m_k,   m = (1/B) Σ_X Φ(X),

    the entropy term written as ``entropy_weight`` × (log K − H(m)) (the marginal-entropy gap of
    :func:`~deepclust.losses.cluster_contrastive.marginal_entropy_gap`): SCAN's value plus the
    constant λ log K, the same gradient, and 0 at a uniform marginal. SCAN draws a neighbour per
    anchor each step, as here; λ = 5 in its CIFAR and STL-10 configurations.
    """

    def __init__(self, entropy_weight: float = 5.0):
        super().__init__()
        if isinstance(entropy_weight, bool) or not isinstance(entropy_weight, numbers.Real) or entropy_weight < 0:
            raise ValueError(f"entropy_weight must be a number >= 0, got {entropy_weight!r}")
        self.entropy_weight = float(entropy_weight)

    def forward(self, anchors: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        if anchors.shape != neighbours.shape or anchors.ndim != 2:
            raise ValueError("neighbour consistency loss expects two B×K probability matrices of one shape, "
                             f"got {tuple(anchors.shape)} and {tuple(neighbours.shape)}")
        anchors, neighbours = anchors.float(), neighbours.float()
        agreement = (anchors * neighbours).sum(dim=1)
        consistency = -torch.log(agreement.clamp_min(1e-12)).mean()
        return consistency + self.entropy_weight * marginal_entropy_gap(anchors)
