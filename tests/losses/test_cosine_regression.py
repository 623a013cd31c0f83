import torch

from deepclust.losses import cosine_regression


def test_extremes_and_hand_values():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert torch.allclose(cosine_regression(a, a), torch.zeros(2), atol=1e-6)
    assert torch.allclose(cosine_regression(a, -a), torch.full((2,), 4.0), atol=1e-6)
    p, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    # ‖p̂ − t̂‖² computed by hand: (1 − 1/√2)² + (1/√2)² = 2 − √2
    assert abs(float(cosine_regression(p, t)[0]) - (2 - 2 ** 0.5)) < 1e-6
