"""Diffused sampling alignment (DSA) of HaDis."""
from __future__ import annotations

import torch
from torch import nn

from deepclust.losses.cosine_regression import CosineRegressionLoss


class DiffusedAlignmentLoss(nn.Module):
    """L_DSA = −2 · mean_i cos(p_i, k_i) (HaDis, Zhang & Huang, arXiv 2401.14038, the DSA loss).

    ``forward(prediction, target)``: ``prediction`` is the predictor's output on the diffused online
    sample, p = q(q̃) (:func:`deepclust.methods.hadis.diffuse`); ``target`` the other view's target
    projection k (detached by the caller). This is BYOL's regression loss (Grill et al. 2020, Eq. 2,
    :class:`CosineRegressionLoss`), ‖p̂ − k̂‖² = 2 − 2 cos, shifted by the constant −2 as the
    reference implementation reports it: the gradients are BYOL's. See ``docs/methods/hadis.md``.
    """

    def __init__(self):
        super().__init__()
        self.regression = CosineRegressionLoss()

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape or prediction.ndim != 2:
            raise ValueError("diffused alignment expects two B×D tensors of one shape, "
                             f"got {tuple(prediction.shape)} and {tuple(target.shape)}")
        return self.regression(prediction, target) - 2.0
