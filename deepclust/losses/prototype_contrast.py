"""Prototypical contrast (ProPos' prototype scattering loss), as used by HaDis.

Used by the method described in docs/methods/hadis.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """μ_c = normalise(mean of normalise(z_i) over the i with y_i = c), a K×D matrix.

    A cluster absent from the batch gets the zero vector.
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"prototypes need B×D embeddings and B labels, got {tuple(embeddings.shape)} "
                         f"and {tuple(labels.shape)}")
    members = F.one_hot(labels.long(), n_clusters).T.float()                     # K×B
    weights = members / members.sum(dim=1, keepdim=True).clamp_min(1.0)
    return F.normalize(weights @ F.normalize(embeddings.float(), dim=1), dim=1)


class PrototypeContrastLoss(nn.Module):
    """L_proto, prototypical contrast over the batch's pseudo-label clusters (HaDis, Zhang & Huang,
    arXiv 2401.14038, prototypical contrastive loss; the prototype scattering loss of ProPos,
    Huang et al. TPAMI 2022).

    With online prototypes μ^q_c and target prototypes μ^k_c (:func:`batch_prototypes`), each
    cluster c present in the batch has the positive logit μ^q_c·μ^k_c / τ and the negatives
    μ^q_c·μ^q_{c'} / τ, c' ≠ c; logits of absent clusters c' are set to ``absent_logit`` (−10, as the
    reference implementation), and

        L_proto = mean_{c present} [ −pos_c + logsumexp(pos_c, neg_{c,1}, …, neg_{c,K−1}) ].

    ``forward(online, target, labels)`` takes the un-normalised online projections q, the target
    projections k and the batch's pseudo-labels; τ = 0.5.
    """

    def __init__(self, n_clusters: int, temperature: float = 0.5, absent_logit: float = -10.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.n_clusters = int(n_clusters)
        self.temperature = temperature
        self.absent_logit = absent_logit

    def forward(self, online: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if online.shape != target.shape:
            raise ValueError(f"online and target embeddings differ in shape: {tuple(online.shape)} "
                             f"and {tuple(target.shape)}")
        online_prototypes = batch_prototypes(online, labels, self.n_clusters)
        target_prototypes = batch_prototypes(target, labels, self.n_clusters)
        positives = (online_prototypes * target_prototypes).sum(dim=1) / self.temperature
        logits = online_prototypes @ online_prototypes.T / self.temperature
        eye = torch.eye(self.n_clusters, dtype=torch.bool, device=logits.device)
        logits = torch.where(eye, positives.unsqueeze(1), logits)
        present = torch.bincount(labels.long(), minlength=self.n_clusters) > 0
        logits = logits.masked_fill(~present.unsqueeze(0), self.absent_logit)
        per_cluster = torch.logsumexp(logits, dim=1) - logits.diagonal()
        return per_cluster[present].mean()
