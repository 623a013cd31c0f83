"""HTCN's instance prediction loss L_ins against naive references (fidelity test 1 of docs/methods/htcn.md)."""
import math

import pytest
import torch

from deepclust.losses import CosineRegressionLoss, HubClusterConsistencyLoss, HubPredictionLoss
from support import naive_cos, three_views


def naive_l(p, t):
    """Mean over the batch of 2 − 2·cos, sample by sample."""
    return sum(2 - 2 * naive_cos(p[i], t[i]) for i in range(p.shape[0])) / p.shape[0]


def test_ell_identical_and_opposite():
    a = torch.tensor([[0.3, -1.2, 2.0], [4.0, 0.5, -0.1]])
    ell = CosineRegressionLoss()
    for row in (a[:1], a[1:]):                                                  # ℓ sample by sample
        assert torch.allclose(ell(row, row), torch.tensor(0.0), atol=1e-6)     # ℓ(a, a) = 0
        assert torch.allclose(ell(row, -row), torch.tensor(4.0), atol=1e-6)    # ℓ(a, −a) = 4
    # through L_ins: the four terms all (a, a), then all (a, −a)
    assert abs(float(HubPredictionLoss()([a, a, a], [a, a, a]))) < 1e-5
    assert abs(float(HubPredictionLoss()([a, a, a], [-a, -a, -a])) - 4 * 4.0) < 1e-5


def test_hand_made_two_by_two():
    p1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p2 = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    p3 = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    t1 = torch.tensor([[3.0, 0.0], [0.0, -1.0]])
    t2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    t3 = torch.tensor([[0.0, 5.0], [1.0, 0.0]])
    # by hand, per pair (sample 0, sample 1) → batch mean:
    # ℓ(p1,t3): cos 0, 0 → (2 + 2)/2 = 2
    # ℓ(p3,t1): cos 1/√2, 0 → (2 − √2 + 2)/2
    # ℓ(p2,t3): cos 1, 1/√2 → (0 + 2 − √2)/2
    # ℓ(p3,t2): cos 1, 0 → (0 + 2)/2 = 1
    expected = 2 + (4 - math.sqrt(2)) / 2 + (2 - math.sqrt(2)) / 2 + 1   # = 6 − √2
    value = HubPredictionLoss()([p1, p2, p3], [t1, t2, t3])
    assert abs(float(value) - expected) < 1e-6
    assert abs(expected - (6 - math.sqrt(2))) < 1e-12


def test_instance_loss_matches_naive_four_terms():
    predictions, targets = three_views((5, 7), seed=1)
    p1, p2, p3 = predictions
    t1, t2, t3 = targets
    expected = naive_l(p1, t3) + naive_l(p3, t1) + naive_l(p2, t3) + naive_l(p3, t2)
    assert abs(float(HubPredictionLoss()(predictions, targets)) - expected) < 1e-5


def test_instance_loss_view_three_is_the_hub():
    predictions, targets = three_views((4, 3), seed=2)
    value = float(HubPredictionLoss()(predictions, targets))
    # changing how view 1 relates to view 2 (a non-hub pair) leaves the loss unchanged …
    assert abs(float(HubPredictionLoss()([predictions[1], predictions[0], predictions[2]],
                                         [targets[1], targets[0], targets[2]])) - value) < 1e-5
    # … while making view 1 the hub changes it
    assert abs(float(HubPredictionLoss()(predictions[::-1], targets[::-1])) - value) > 1e-3


def test_instance_loss_gradients_only_through_predictions():
    predictions, targets = three_views((4, 3), seed=3)
    predictions = [p.requires_grad_() for p in predictions]
    HubPredictionLoss()(predictions, targets).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in predictions)


@pytest.mark.parametrize("online, target, message", [
    ([torch.rand(4, 3)] * 2, [torch.rand(4, 3)] * 3, "three online and three target"),
    ([torch.rand(4, 3)] * 3, [torch.rand(4, 3)] * 2 + [torch.rand(4, 2)], "one shape"),
    ([torch.rand(4)] * 3, [torch.rand(4)] * 3, "B×D"),
])
@pytest.mark.parametrize("loss", [HubPredictionLoss(), HubClusterConsistencyLoss()], ids=["L_ins", "L_clu"])
def test_bad_inputs_are_errors(online, target, message, loss):
    """``check_three_views`` (this module) guards both HTCN losses."""
    with pytest.raises(ValueError, match=message):
        loss(online, target)
