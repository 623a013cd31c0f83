"""HTCN's cluster consistency loss L_clu against naive references (fidelity tests 2-3 of
docs/methods/htcn.md)."""
import math

import torch

from deepclust.losses import HubClusterConsistencyLoss
from deepclust.losses.cluster_contrastive import marginal_entropy_gap
from support import naive_cos, three_views


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


# --- 2. the cluster-level contrastive terms ----------------------------------------------------
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
    online, target = three_views((8, 4), seed=4, softmax=True)
    o1, o2, o3 = online
    s1, s2, s3 = target
    expected = (naive_ccl(o1, s3) + naive_ccl(o2, s3) + naive_ccl(o3, s1) + naive_ccl(o3, s2)) / 4
    assert abs(float(HubClusterConsistencyLoss()(online, target)) - expected) < 1e-5


def test_cluster_loss_temperature_is_passed_on():
    online, target = three_views((6, 3), seed=5, softmax=True)
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
