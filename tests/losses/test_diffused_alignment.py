"""HaDis's diffused sampling alignment (DSA) against a naive mean cosine."""
import pytest
import torch

from deepclust.losses import DiffusedAlignmentLoss
from support import naive_cos


def test_dsa_matches_naive_mean_cosine():
    torch.manual_seed(0)
    p, k = torch.randn(6, 5), torch.randn(6, 5)
    expected = -2.0 * sum(naive_cos(p[i].tolist(), k[i].tolist()) for i in range(6)) / 6
    assert DiffusedAlignmentLoss()(p, k).item() == pytest.approx(expected, abs=1e-5)
    assert DiffusedAlignmentLoss()(k, k).item() == pytest.approx(-2.0, abs=1e-5)


def test_dsa_shape_error():
    with pytest.raises(ValueError, match="B×D"):
        DiffusedAlignmentLoss()(torch.zeros(3, 4), torch.zeros(3, 5))
