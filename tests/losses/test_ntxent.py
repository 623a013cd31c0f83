import math

import torch

from deepclust.losses import NTXentLoss


def naive_ntxent(z1, z2, temperature):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    batch = n // 2
    total = 0.0
    for a in range(n):
        positive = (a + batch) % n
        denominator = sum(math.exp(float(z[a] @ z[b]) / temperature) for b in range(n) if b != a)
        total += -math.log(math.exp(float(z[a] @ z[positive]) / temperature) / denominator)
    return total / n


def test_ntxent_hand_made_2x2():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    # anchor 0: positive cos 1, negatives cos 0 (twice); same for every anchor
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert abs(float(NTXentLoss(tau)(z1, z2)) - expected) < 1e-6


def test_ntxent_matches_naive_loop():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    for tau in (0.1, 0.5, 1.0):
        assert abs(float(NTXentLoss(tau)(z1, z2)) - naive_ntxent(z1, z2, tau)) < 1e-5


def test_ntxent_is_symmetric_in_views():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    assert torch.allclose(NTXentLoss(0.5)(z1, z2), NTXentLoss(0.5)(z2, z1), atol=1e-6)
