"""ConCURL population consistency (SwAV swapped prediction) against a naive loop."""
import math

import pytest
import torch

from deepclust.losses import SwappedPredictionLoss
from deepclust.losses.swapped_prediction import soft_cross_entropy


def naive_h(q, s, tau):
    """H(q, softmax(s/τ)) = −(1/B) Σ_b Σ_k q_bk log p_bk with explicit loops."""
    total = 0.0
    for qb, sb in zip(q.tolist(), s.tolist()):
        norm = sum(math.exp(v / tau) for v in sb)
        total += -sum(qk * math.log(math.exp(sk / tau) / norm) for qk, sk in zip(qb, sb))
    return total / len(q)


def test_swapped_prediction_matches_naive():
    g = torch.Generator().manual_seed(0)
    s1, s2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    q1, q2 = torch.rand(6, 4, generator=g, dtype=torch.float64), torch.rand(6, 4, generator=g, dtype=torch.float64)
    q1, q2 = q1 / q1.sum(1, keepdim=True), q2 / q2.sum(1, keepdim=True)
    expected = 0.5 * (naive_h(q2, s1, 0.1) + naive_h(q1, s2, 0.1))
    assert SwappedPredictionLoss(0.1)(s1, s2, q1, q2).item() == pytest.approx(expected, rel=1e-6)


def test_hand_value_uniform_scores():
    # equal scores: p = 1/K for every k, so H(q, p) = log K whatever q
    q = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    assert soft_cross_entropy(q, torch.zeros(2, 3), 0.1).item() == pytest.approx(math.log(3))


def test_gradient_only_through_scores_and_errors():
    s1 = torch.randn(3, 2, requires_grad=True)
    q = torch.full((3, 2), 0.5)
    SwappedPredictionLoss()(s1, torch.randn(3, 2), q, q).backward()
    assert s1.grad is not None and torch.isfinite(s1.grad).all()
    with pytest.raises(ValueError, match="one shape"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="positive"):
        SwappedPredictionLoss(0.0)
