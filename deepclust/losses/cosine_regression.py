"""BYOL's regression loss between a prediction and a target projection.

Used by the methods described in docs/methods/htcn.md and docs/methods/hadis.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineRegressionLoss(nn.Module):
    """L = (1/B) Σ_i ℓ(p_i, t_i), ℓ(p, t) = ‖p̂ − t̂‖² = 2 − 2·cos(p, t) (BYOL, Grill et al. 2020, Eq. 2).

    ``forward(prediction, target)`` takes two (B, D) tensors; ``target`` is used as given, so
    callers detach it when it comes from a target network. Computed in float32.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (2.0 - 2.0 * F.cosine_similarity(prediction.float(), target.float(), dim=-1)).mean()
