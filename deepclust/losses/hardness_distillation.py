"""Hardness-aware self-distillation (HSD) of HaDis.

Used by the method described in docs/methods/hadis.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def unit_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """D[i, j] = ‖a_i − b_j‖ = sqrt(max(2 − 2 a_i·b_j, 1e-12)) for L2-normalised rows (finite gradient)."""
    return (2.0 - 2.0 * a @ b.T).clamp_min(1e-12).sqrt()


@dataclass
class HardestPairs:
    """Per anchor i: hardest negative/positive index, their detached weights, the student distances."""

    negative: torch.Tensor          # j⁻ (B,) long; 0 where the negative set is empty
    positive: torch.Tensor          # j⁺ (B,) long
    negative_weight: torch.Tensor   # w⁻ (B,), 0 where the negative set is empty
    positive_weight: torch.Tensor   # w⁺ (B,)
    negative_distance: torch.Tensor  # D[i, j⁻] (B,), with gradient to the student
    positive_distance: torch.Tensor  # D[i, j⁺] (B,), with gradient to the student


def mine_hardest_pairs(teacher: torch.Tensor, student: torch.Tensor) -> HardestPairs:
    """Hardest positive/negative mining of HSD (HaDis, Zhang & Huang, arXiv 2401.14038).

    With t = normalise(teacher), s = normalise(student), D_t[i, j] = ‖t_i − t_j‖ and
    D[i, j] = ‖t_i − s_j‖, anchor i has the negatives N_i = {j : D_t[i, j] > D[i, i]} and the
    positives {j ∉ N_i} (which hold j = i, as in the reference implementation);

        j⁻ = argmin_{j ∈ N_i} D[i, j],   j⁺ = argmax_{j ∉ N_i} D[i, j],
        w⁻ = max(0, D_t[i, j⁻] − D[i, j⁻]),   w⁺ = max(0, D[i, j⁺] − D_t[i, j⁺])   (detached).

    An anchor with an empty negative set gets w⁻ = 0 (the reference's 1e5 sentinel does the same).
    """
    if teacher.shape != student.shape or teacher.ndim != 2:
        raise ValueError("HSD expects teacher and student B×D tensors of one shape, "
                         f"got {tuple(teacher.shape)} and {tuple(student.shape)}")
    t = F.normalize(teacher.float(), dim=1)
    s = F.normalize(student.float(), dim=1)
    # The diagonals come from the differences, not from 2 − 2 t_i·s_i, whose rounding noise (~1e-4
    # near 0) would decide the comparisons with D[i, i]: D_t[i, i] = 1e-6 (0 after the clamp) and
    # D[i, i] ≥ 1e-6, so j = i is always a positive, and s = t gives D = D_t exactly.
    eye = torch.eye(t.shape[0], dtype=torch.bool, device=t.device)
    teacher_distances = unit_distances(t, t).masked_fill(eye, 1e-6)
    paired = (t - s).pow(2).sum(dim=1).clamp_min(1e-12).sqrt()
    distances = torch.where(eye, paired.unsqueeze(1), unit_distances(t, s))
    negatives = teacher_distances > distances.diagonal().unsqueeze(1)
    with torch.no_grad():
        negative = distances.masked_fill(~negatives, float("inf")).argmin(dim=1)
        positive = distances.masked_fill(negatives, float("-inf")).argmax(dim=1)
    negative_distance = distances.gather(1, negative.unsqueeze(1)).squeeze(1)
    positive_distance = distances.gather(1, positive.unsqueeze(1)).squeeze(1)
    teacher_negative = teacher_distances.gather(1, negative.unsqueeze(1)).squeeze(1)
    teacher_positive = teacher_distances.gather(1, positive.unsqueeze(1)).squeeze(1)
    has_negative = negatives.any(dim=1)
    negative_weight = ((teacher_negative - negative_distance).clamp_min(0.0) * has_negative).detach()
    positive_weight = (positive_distance - teacher_positive).clamp_min(0.0).detach()
    return HardestPairs(negative, positive, negative_weight, positive_weight,
                        negative_distance, positive_distance)


class HardnessAwareDistillationLoss(nn.Module):
    """L_HSD, hardness-aware self-distillation (HaDis, Zhang & Huang, arXiv 2401.14038, HSD loss).

    With the hardest pairs and weights of :func:`mine_hardest_pairs`, each anchor has the two logits

        ℓ_i = [ w⁻ · D[i, j⁻] / τ,  w⁺ · D[i, j⁺] / τ ]

    and L_HSD = mean_i CE(ℓ_i, class 0): the weighted distance to the hardest negative should
    dominate the weighted distance to the hardest positive. ``forward(teacher, student)`` takes the
    target projection (no gradient) and the prediction of the diffused online sample; τ = 0.5.
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        pairs = mine_hardest_pairs(teacher, student)
        logits = torch.stack([pairs.negative_weight * pairs.negative_distance,
                              pairs.positive_weight * pairs.positive_distance], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
