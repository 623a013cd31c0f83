"""N2D's reconstruction loss against hand values."""
import pytest
import torch

from deepclust.losses import ReconstructionLoss


def test_mean_squared_error_over_batch_and_values():
    inputs = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    reconstruction = torch.tensor([[1.0, 1.0], [0.5, -0.5]])
    # squared errors 1, 0, 0, 1 over 2 × 2 values
    assert float(ReconstructionLoss()(reconstruction, inputs)) == pytest.approx(0.5)


def test_images_and_gradient():
    inputs = torch.zeros(3, 1, 2, 2)
    reconstruction = torch.full((3, 1, 2, 2), 2.0, requires_grad=True)
    loss = ReconstructionLoss()(reconstruction, inputs)
    assert float(loss) == pytest.approx(4.0)
    loss.backward()
    assert torch.allclose(reconstruction.grad, torch.full((3, 1, 2, 2), 2 * 2.0 / 12))  # d/dx̂ of mean (x̂ - x)²


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"reconstruction of shape \(2, 3\) does not match the inputs' shape \(2, 4\)"):
        ReconstructionLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
