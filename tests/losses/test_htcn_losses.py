"""HTCN's two losses (spec /work/shared/specs/htcn.md, fidelity tests 1-3) against naive references."""
import math

import pytest
import torch

from deepclust.losses import cosine_regression, marginal_entropy_gap
from deepclust.losses.htcn_cluster_consistency import HubClusterConsistencyLoss
from deepclust.losses.htcn_hub_prediction import hub_prediction_loss


def naive_cos(u, v):
    dot = sum(float(a) * float(b) for a, b in zip(u, v))
    return dot / (math.sqrt(sum(float(a) ** 2 for a in u)) * math.sqrt(sum(float(b) ** 2 for b in v)))


def naive_l(p, t):
    """Mean over the batch of 2 − 2·cos, sample by sample."""
    return sum(2 - 2 * naive_cos(p[i], t[i]) for i in range(p.shape[0])) / p.shape[0]


def naive_ccl(a, b, temperature=1.0):
    """Contrastive Clustering's cluster loss with entropy terms, by explicit loops over columns."""
    columns = [a[:, k] for k in range(a.shape[1])] + [b[:, k] for k in range(b.shape[1])]
    total = len(columns)
    contrastive = 0.0
    for i in range(total):
        positive = (i + total // 2) % total
        denominator = sum(math.exp(naive_cos(columns[i], columns[j]) / temperature)
                          for j in range(total) if j != i)
        contrastive -= math.log(math.exp(naive_cos(columns[i], columns[positive]) / temperature) / denominator)
    entropy = 0.0
    for p in (a, b):
        column_sums = [float(p[:, k].sum()) for k in range(p.shape[1])]
        m = [s / sum(column_sums) for s in column_sums]
        entropy += math.log(p.shape[1]) + sum(x * math.log(x) for x in m if x > 0)
    return contrastive / total + entropy


def random_views(shape, seed, softmax=False):
    generator = torch.Generator().manual_seed(seed)
    views = [torch.randn(*shape, generator=generator) for _ in range(6)]
    if softmax:
        views = [v.softmax(dim=1) for v in views]
    return views[:3], views[3:]


# --- 1. instance prediction loss ------------------------------------------------------------------
def test_ell_identical_and_opposite():
    a = torch.tensor([[0.3, -1.2, 2.0], [4.0, 0.5, -0.1]])
    assert torch.allclose(cosine_regression(a, a), torch.zeros(2), atol=1e-6)          # ℓ(a, a) = 0
    assert torch.allclose(cosine_regression(a, -a), torch.full((2,), 4.0), atol=1e-6)  # ℓ(a, −a) = 4
    # through L_ins: the four terms all (a, a), then all (a, −a)
    assert abs(float(hub_prediction_loss([a, a, a], [a, a, a]))) < 1e-5
    assert abs(float(hub_prediction_loss([a, a, a], [-a, -a, -a])) - 4 * 4.0) < 1e-5


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
    value = hub_prediction_loss([p1, p2, p3], [t1, t2, t3])
    assert abs(float(value) - expected) < 1e-6
    assert abs(expected - (6 - math.sqrt(2))) < 1e-12


def test_instance_loss_matches_naive_four_terms():
    predictions, targets = random_views((5, 7), seed=1)
    p1, p2, p3 = predictions
    t1, t2, t3 = targets
    expected = naive_l(p1, t3) + naive_l(p3, t1) + naive_l(p2, t3) + naive_l(p3, t2)
    assert abs(float(hub_prediction_loss(predictions, targets)) - expected) < 1e-5


def test_instance_loss_view_three_is_the_hub():
    predictions, targets = random_views((4, 3), seed=2)
    value = float(hub_prediction_loss(predictions, targets))
    # changing how view 1 relates to view 2 (a non-hub pair) leaves the loss unchanged …
    assert abs(float(hub_prediction_loss([predictions[1], predictions[0], predictions[2]],
                                         [targets[1], targets[0], targets[2]])) - value) < 1e-5
    # … while making view 1 the hub changes it
    assert abs(float(hub_prediction_loss(predictions[::-1], targets[::-1])) - value) > 1e-3


def test_instance_loss_gradients_only_through_predictions():
    predictions, targets = random_views((4, 3), seed=3)
    predictions = [p.requires_grad_() for p in predictions]
    hub_prediction_loss(predictions, targets).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in predictions)


@pytest.mark.parametrize("online, target, message", [
    ([torch.rand(4, 3)] * 2, [torch.rand(4, 3)] * 3, "three online and three target"),
    ([torch.rand(4, 3)] * 3, [torch.rand(4, 3)] * 2 + [torch.rand(4, 2)], "one shape"),
    ([torch.rand(4)] * 3, [torch.rand(4)] * 3, "B×D"),
])
def test_bad_inputs_are_errors(online, target, message):
    with pytest.raises(ValueError, match=message):
        hub_prediction_loss(online, target)
    with pytest.raises(ValueError, match=message):
        HubClusterConsistencyLoss()(online, target)


# --- 2. cluster consistency loss ------------------------------------------------------------------
def test_identical_balanced_one_hot():
    k = 3
    one_hot = torch.eye(k).repeat(2, 1)          # 6 samples, 2 per cluster: balanced
    same = [one_hot.clone() for _ in range(3)]
    loss = HubClusterConsistencyLoss(temperature=1.0)(same, [one_hot.clone() for _ in range(3)])
    # every column's positive has cosine 1, its 2K − 2 = 4 negatives cosine 0; entropy terms 0
    expected = -math.log(math.e / (math.e + 2 * k - 2))
    assert abs(float(loss) - expected) < 1e-6
    without_entropy = HubClusterConsistencyLoss(temperature=1.0, entropy_weight=0.0)(same, same)
    assert abs(float(loss) - float(without_entropy)) < 1e-7


def test_cluster_loss_matches_naive_quarter_of_four_ccl():
    online, target = random_views((8, 4), seed=4, softmax=True)
    o1, o2, o3 = online
    s1, s2, s3 = target
    expected = (naive_ccl(o1, s3) + naive_ccl(o2, s3) + naive_ccl(o3, s1) + naive_ccl(o3, s2)) / 4
    assert abs(float(HubClusterConsistencyLoss()(online, target)) - expected) < 1e-5


def test_cluster_loss_temperature_is_passed_on():
    online, target = random_views((6, 3), seed=5, softmax=True)
    o1, o2, o3 = online
    s1, s2, s3 = target
    expected = sum(naive_ccl(a, b, 0.5) for a, b in ((o1, s3), (o2, s3), (o3, s1), (o3, s2))) / 4
    assert abs(float(HubClusterConsistencyLoss(temperature=0.5)(online, target)) - expected) < 1e-5


# --- 3. entropy term ------------------------------------------------------------------------------
def test_entropy_term_log_k_when_collapsed_zero_when_uniform():
    k = 5
    collapsed = torch.zeros(6, k)
    collapsed[:, 1] = 1.0
    uniform = torch.full((6, k), 1.0 / k)
    assert abs(float(marginal_entropy_gap(collapsed)) - math.log(k)) < 1e-6
    assert abs(float(marginal_entropy_gap(uniform))) < 1e-7
    # inside L_clu: each of the 4 CCL terms adds the gaps of its two matrices, averaged by ¼
    for p, gap in ((collapsed, math.log(k)), (uniform, 0.0)):
        views = [p.clone() for _ in range(3)]
        with_entropy = HubClusterConsistencyLoss(entropy_weight=1.0)(views, views)
        without = HubClusterConsistencyLoss(entropy_weight=0.0)(views, views)
        assert abs(float(with_entropy - without) - 2 * gap) < 1e-5
