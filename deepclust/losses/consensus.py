"""ConCURL's consensus consistency: randomly projected scores must predict the balanced targets.

Used by the method described in docs/methods/concurl.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepclust.cluster.random_projection import RandomProjections
from deepclust.losses.swapped_prediction import SwappedPredictionLoss


def projected_scores(embeddings: torch.Tensor, prototypes: torch.Tensor, projections: RandomProjections,
                     detach_prototypes: bool = True) -> torch.Tensor:
    """(T, B, K) scores s_t = ũ_t W̃_tᵀ of every random projection t (ConCURL, consensus consistency):

        ũ_t = normalise(R_t u)  (rows),   W̃_t = row-normalise(W R_tᵀ),

    for embeddings u (B, d) and prototypes W (K, d). With ``detach_prototypes`` (ConCURL's
    ``use_no_grad``) W̃_t is computed without gradient, so only the embeddings are trained by it.
    """
    if embeddings.ndim != 2 or prototypes.ndim != 2 or embeddings.shape[1] != prototypes.shape[1]:
        raise ValueError(f"projected scores expect embeddings (B, d) and prototypes (K, d), "
                         f"got {tuple(embeddings.shape)} and {tuple(prototypes.shape)}")
    dtype = torch.promote_types(embeddings.dtype, torch.float32)  # half precision (autocast) → float32
    projected = F.normalize(projections(embeddings.to(dtype)), dim=-1)           # (T, B, p)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_prototypes):
        centres = F.normalize(projections(prototypes.to(dtype)), dim=-1)         # (T, K, p)
    return projected @ centres.transpose(1, 2)


class ConsensusLoss(nn.Module):
    """Consensus consistency loss of ConCURL (Deshmukh et al., "Representation Learning for
    Clustering via Building Consensus", arXiv 2105.01289, the consensus loss over T random
    representation-space variations):

        L_t = ½ [ H(q2, softmax(s_t¹/τ)) + H(q1, softmax(s_t²/τ)) ],   L_cons = (1/T) Σ_t L_t,

    with s_tᵛ the projected scores of view v (:func:`projected_scores`), q_v the Sinkhorn targets
    of the *un-projected* scores and H the soft cross-entropy of SwAV's swapped prediction.
    """

    def __init__(self, temperature: float = 0.1, detach_prototypes: bool = True):
        super().__init__()
        self.swapped = SwappedPredictionLoss(temperature)
        self.detach_prototypes = bool(detach_prototypes)

    def from_scores(self, projected1: torch.Tensor, projected2: torch.Tensor, targets1: torch.Tensor,
                    targets2: torch.Tensor) -> torch.Tensor:
        """L_cons from (T, B, K) projected scores of the two views and (B, K) targets."""
        if projected1.ndim != 3 or projected1.shape != projected2.shape or projected1.shape[1:] != targets1.shape:
            raise ValueError(f"consensus loss expects (T, B, K) projected scores of both views and (B, K) "
                             f"targets, got {tuple(projected1.shape)}, {tuple(projected2.shape)} and "
                             f"{tuple(targets1.shape)}")
        # the soft cross-entropy averages over T and B at once: the mean over t of per-t batch means
        return self.swapped(projected1, projected2, targets1.expand_as(projected1), targets2.expand_as(projected2))

    def forward(self, embeddings1: torch.Tensor, embeddings2: torch.Tensor, prototypes: torch.Tensor,
                projections: RandomProjections, targets1: torch.Tensor, targets2: torch.Tensor) -> torch.Tensor:
        return self.from_scores(projected_scores(embeddings1, prototypes, projections, self.detach_prototypes),
                                projected_scores(embeddings2, prototypes, projections, self.detach_prototypes),
                                targets1, targets2)
