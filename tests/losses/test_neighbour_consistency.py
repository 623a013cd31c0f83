import math

import pytest
import torch

from deepclust.losses import NeighbourConsistencyLoss


def naive_scan_loss(anchors, neighbours, weight):
    """SCAN's Eq. 2 with loops, plus the constant λ log K of the gap form."""
    batch, n_clusters = len(anchors), len(anchors[0])
    consistency = -sum(math.log(sum(a * b for a, b in zip(anchors[i], neighbours[i]))) for i in range(batch)) / batch
    marginal = [sum(anchors[i][k] for i in range(batch)) / batch for k in range(n_clusters)]
    return consistency + weight * (math.log(n_clusters) + sum(m * math.log(m) for m in marginal if m > 0))


def test_matches_a_naive_reference():
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(6, 4, generator=generator).softmax(dim=1)
    neighbours = torch.randn(6, 4, generator=generator).softmax(dim=1)
    loss = NeighbourConsistencyLoss(entropy_weight=2.5)(anchors, neighbours)
    assert loss.item() == pytest.approx(naive_scan_loss(anchors.tolist(), neighbours.tolist(), 2.5), rel=1e-5)


def test_hand_value_of_agreeing_one_hot_pairs_with_a_uniform_marginal():
    anchors = torch.eye(2)
    assert NeighbourConsistencyLoss(5.0)(anchors, anchors).item() == pytest.approx(0.0, abs=1e-6)
    # two anchors both in cluster 0, neighbours spread halves: −log(1/2), marginal (1, 0) → gap log 2
    neighbours = torch.full((2, 2), 0.5)
    collapsed = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    expected = math.log(2) + 1.0 * math.log(2)
    assert NeighbourConsistencyLoss(1.0)(collapsed, neighbours).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_reaches_both_sides():
    anchors = torch.randn(4, 3).softmax(dim=1).requires_grad_()
    neighbours = torch.randn(4, 3).softmax(dim=1).requires_grad_()
    NeighbourConsistencyLoss()(anchors, neighbours).backward()
    assert anchors.grad.abs().sum() > 0 and neighbours.grad.abs().sum() > 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="entropy_weight"):
        NeighbourConsistencyLoss(-1.0)
    with pytest.raises(ValueError, match="entropy_weight"):
        NeighbourConsistencyLoss(True)
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(4, 2\)"):
        NeighbourConsistencyLoss()(torch.ones(4, 3) / 3, torch.ones(4, 2) / 2)
