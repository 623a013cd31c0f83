"""SwAV's swapped prediction: each view's scores predict the other view's balanced targets.

Used by the method described in docs/methods/concurl.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_cross_entropy(targets: torch.Tensor, scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """H(q, p) = −(1/B) Σ_b Σ_k q_bk log p_bk with p = softmax(scores / τ) (SwAV, Caron et al. 2020,
    Eq. 2: ℓ(z_t, q_s) = −Σ_k q_s^(k) log p_t^(k), p_t^(k) = softmax_k(z_tᵀ c_k / τ), averaged over the batch).

    ``targets`` are used as given (callers pass detached Sinkhorn targets); the last dimension is K.
    """
    if targets.shape != scores.shape:
        raise ValueError(f"soft cross-entropy expects targets and scores of one shape, "
                         f"got {tuple(targets.shape)} and {tuple(scores.shape)}")
    dtype = torch.promote_types(scores.dtype, torch.float32)  # half precision (autocast) → float32
    log_p = F.log_softmax(scores.to(dtype) / temperature, dim=-1)
    return -(targets.to(dtype) * log_p).sum(dim=-1).mean()


class SwappedPredictionLoss(nn.Module):
    """Population consistency of ConCURL (Deshmukh et al., arXiv 2105.01289), i.e. SwAV's swapped
    prediction problem (Caron et al. 2020, Eq. 1) for two views, averaged:

        L_pop = ½ [ H(q2, softmax(s1/τ)) + H(q1, softmax(s2/τ)) ],

    where s_v are the (B, K) prototype scores of view v and q_v its Sinkhorn targets. τ = 0.1 in
    ConCURL (SwAV's temperature).
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"swapped prediction temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, scores1: torch.Tensor, scores2: torch.Tensor, targets1: torch.Tensor,
                targets2: torch.Tensor) -> torch.Tensor:
        return 0.5 * (soft_cross_entropy(targets2, scores1, self.temperature)
                      + soft_cross_entropy(targets1, scores2, self.temperature))
