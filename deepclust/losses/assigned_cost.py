"""HardReg's training loss: the mean cost of every point in the cluster it was assigned to."""
from __future__ import annotations

import torch
from torch import nn


class AssignedCostLoss(nn.Module):
    """L = (1/B) Σ_i d_{i, a(i)} (HardReg, Mahon & Lukasiewicz, AAAI 2024, the training objective).

    ``forward(costs, assignments)`` takes the (B, K) costs d — HardReg's Gaussian cost
    :func:`~deepclust.cluster.hard_assignment.gaussian_cost` — and the (B,) hard assignments a,
    which the caller chose (:func:`~deepclust.cluster.hard_assignment.hard_regularised_assignment`
    or a baseline rule); gradients reach the encoder and the means through d, not through the
    discrete choice. See ``docs/methods/hardreg.md``.
    """

    def forward(self, costs: torch.Tensor, assignments: torch.Tensor) -> torch.Tensor:
        if assignments.shape != costs.shape[:1]:
            raise ValueError(f"need one assignment per row of costs {tuple(costs.shape)}, "
                             f"got shape {tuple(assignments.shape)}")
        return costs.gather(1, assignments.view(-1, 1).to(costs.device)).mean()
