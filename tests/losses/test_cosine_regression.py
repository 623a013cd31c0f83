import torch

from deepclust.losses import CosineRegressionLoss


def test_extremes_and_hand_values():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    loss = CosineRegressionLoss()
    for row in (a[:1], a[1:]):                     # the per-sample ℓ, one row at a time
        assert torch.allclose(loss(row, row), torch.tensor(0.0), atol=1e-6)
        assert torch.allclose(loss(row, -row), torch.tensor(4.0), atol=1e-6)
    p, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    # ‖p̂ − t̂‖² computed by hand: (1 − 1/√2)² + (1/√2)² = 2 − √2
    assert abs(float(loss(p, t)) - (2 - 2 ** 0.5)) < 1e-6


def test_batch_mean_of_the_per_sample_values():
    p, t = torch.tensor([[1.0, 0.0], [3.0, 4.0]]), torch.tensor([[1.0, 1.0], [-3.0, -4.0]])
    # by hand: ℓ = 2 − √2 for the first pair, 4 for the opposite second pair
    assert abs(float(CosineRegressionLoss()(p, t)) - (2 - 2 ** 0.5 + 4.0) / 2) < 1e-6
