"""BYOL's regression loss between a prediction and a target projection."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_regression(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ℓ(p, t) = ‖p̂ − t̂‖² = 2 − 2·cos(p, t) (BYOL, Grill et al. 2020, Eq. 2).

    ``target`` is used as given; callers detach it when it comes from a target network.
    """
    return 2.0 - 2.0 * F.cosine_similarity(prediction.float(), target.float(), dim=-1)
