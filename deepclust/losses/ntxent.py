"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.

Used by the method described in docs/methods/dchl.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """Instance contrastive loss (SimCLR, Chen et al. 2020, Eq. 1; Contrastive Clustering, Li et al.
    AAAI 2021, Eq. 2-3).

    For embeddings ``z1, z2`` (B×D) of two views, the 2B vectors are L2-normalised; anchor ``a``
    has its other view as positive and the remaining 2B − 2 vectors as negatives:

        ℓ_a = −log( exp(cos(z_a, z_a⁺)/τ) / Σ_{b ≠ a} exp(cos(z_a, z_b)/τ) ),   L = (1/2B) Σ_a ℓ_a.
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"NT-Xent expects two B×D tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
        batch = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.T / self.temperature
        logits.fill_diagonal_(float("-inf"))
        positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
        return F.cross_entropy(logits, positives)
