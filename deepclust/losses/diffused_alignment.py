"""Diffused sampling alignment (DSA) of HaDis."""
from __future__ import annotations

import torch

from deepclust.losses.cosine_regression import cosine_regression


def diffuse(latent: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The diffused sample q̃ = q + ε, ε ~ N(0, σ² I) (HaDis, Zhang & Huang, arXiv 2401.14038, DSA).

    ``std`` = σ (``latent_std``, 0.001 in the paper's configurations); σ = 0 returns ``latent`` itself.
    ε is drawn from ``generator`` (torch's global stream when None).
    """
    if std < 0:
        raise ValueError(f"latent_std must be >= 0, got {std}")
    if std == 0:
        return latent
    return latent + std * torch.randn(latent.shape, generator=generator, device=latent.device, dtype=latent.dtype)


def diffused_alignment_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_DSA = −2 · mean_i cos(p_i, k_i) (HaDis, Zhang & Huang, arXiv 2401.14038, the DSA loss).

    ``prediction`` is the predictor's output on the diffused online sample, p = q(q̃); ``target``
    the other view's target projection k (detached by the caller). This is BYOL's regression loss
    (Grill et al. 2020, Eq. 2), ‖p̂ − k̂‖² = 2 − 2 cos, shifted by the constant −2 as the reference
    implementation reports it: the gradients are BYOL's.
    """
    if prediction.shape != target.shape or prediction.ndim != 2:
        raise ValueError("diffused alignment expects two B×D tensors of one shape, "
                         f"got {tuple(prediction.shape)} and {tuple(target.shape)}")
    return cosine_regression(prediction, target).mean() - 2.0
