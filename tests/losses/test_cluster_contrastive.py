import math

import pytest
import torch

from deepclust.losses import ClusterContrastiveLoss
from deepclust.losses.cluster_contrastive import marginal_entropy_gap


def naive_ccl(a, b, temperature):
    columns = [a[:, k] for k in range(a.shape[1])] + [b[:, k] for k in range(b.shape[1])]
    k_total = len(columns)
    half = k_total // 2

    def cos(u, v):
        return float(u @ v / (u.norm() * v.norm()))

    contrastive = 0.0
    for i in range(k_total):
        positive = (i + half) % k_total
        denominator = sum(math.exp(cos(columns[i], columns[j]) / temperature) for j in range(k_total) if j != i)
        contrastive += -math.log(math.exp(cos(columns[i], columns[positive]) / temperature) / denominator)
    entropy = 0.0
    for p in (a, b):
        m = p.sum(0) / p.sum()
        entropy += math.log(p.shape[1]) + sum(float(x) * math.log(float(x)) for x in m if x > 0)
    return contrastive / k_total + entropy


def test_identical_balanced_one_hot():
    a = torch.eye(3).repeat(2, 1)  # 6 samples, 2 per cluster
    loss = ClusterContrastiveLoss(temperature=1.0)(a, a.clone())
    # positives cosine 1, the 4 other columns cosine 0: −log(e / (e + 4)); entropy term 0
    expected = -math.log(math.e / (math.e + 4))
    assert abs(float(loss) - expected) < 1e-6


def test_entropy_term_extremes():
    collapsed = torch.zeros(5, 4)
    collapsed[:, 2] = 1
    assert abs(float(marginal_entropy_gap(collapsed)) - math.log(4)) < 1e-6
    uniform = torch.full((5, 4), 0.25)
    assert abs(float(marginal_entropy_gap(uniform))) < 1e-6


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_matches_naive_loop(temperature):
    generator = torch.Generator().manual_seed(3)
    a = torch.softmax(torch.randn(6, 4, generator=generator), 1)
    b = torch.softmax(torch.randn(6, 4, generator=generator), 1)
    loss = ClusterContrastiveLoss(temperature)(a, b)
    assert abs(float(loss) - naive_ccl(a, b, temperature)) < 1e-5


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="B×K"):
        ClusterContrastiveLoss()(torch.rand(4, 3), torch.rand(4, 2))
