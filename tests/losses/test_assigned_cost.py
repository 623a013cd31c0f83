"""HardReg's training loss, the mean assigned cost, against hand values."""
import pytest
import torch

from deepclust.losses import AssignedCostLoss


def test_assigned_cost_is_mean_of_the_chosen_entries():
    costs = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    assert float(AssignedCostLoss()(costs, torch.tensor([2, 0]))) == pytest.approx((3.0 + 4.0) / 2)


def test_gradient_reaches_only_the_assigned_entries():
    costs = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    AssignedCostLoss()(costs, torch.tensor([2, 0])).backward()
    assert costs.grad.tolist() == [[0.0, 0.0, 0.5], [0.5, 0.0, 0.0]]


def test_one_assignment_per_row():
    with pytest.raises(ValueError, match="one assignment per row"):
        AssignedCostLoss()(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
