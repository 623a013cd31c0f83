import numpy as np
import pytest

from deepclust.cluster import consensus, consensus_objective
from deepclust.evaluation import cluster_accuracy


def naive_co_association_objective(labels, partitions):
    """J = 1/(N r) Σ_k 1/|C_k| Σ_{x,y∈C_k} A_xy with the co-association counts A built pair by pair."""
    n, r = len(labels), len(partitions)
    agreements = [[sum(p[x] == p[y] for p in partitions) for y in range(n)] for x in range(n)]
    total = 0.0
    for k in set(labels):
        members = [x for x in range(n) if labels[x] == k]
        total += sum(agreements[x][y] for x in members for y in members) / len(members)
    return total / (n * r)


def naive_kmeans_cost(labels, partitions):
    """SSE of ``labels`` on the concatenated one-hot memberships, each cluster around its own mean."""
    rows = []
    for x in range(len(labels)):
        row = []
        for p in partitions:
            names = sorted(set(p))
            row += [1.0 if p[x] == name else 0.0 for name in names]
        rows.append(row)
    cost = 0.0
    for k in set(labels):
        members = [rows[x] for x in range(len(labels)) if labels[x] == k]
        mean = [sum(column) / len(members) for column in zip(*members)]
        cost += sum((a - b) ** 2 for row in members for a, b in zip(row, mean))
    return cost


def naive_category_utility(labels, member):
    """U_c(π, π_i) = Σ_k p_k Σ_j (p_kj / p_k)² − Σ_j p_j² (Wu et al. 2015, Table 2)."""
    n = len(labels)
    value = 0.0
    for k in set(labels):
        in_k = [x for x in range(n) if labels[x] == k]
        value += len(in_k) / n * sum((sum(member[x] == j for x in in_k) / len(in_k)) ** 2 for j in set(member))
    return value - sum((list(member).count(j) / n) ** 2 for j in set(member))


def noisy_copies(truth, n_copies, flip, n_clusters, seed):
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(n_copies):
        labels = truth.copy()
        flipped = rng.random(len(truth)) < flip
        labels[flipped] = rng.integers(0, n_clusters, flipped.sum())
        copies.append(rng.permutation(n_clusters)[labels])  # each member names its clusters its own way
    return copies


def test_objective_against_the_co_association_matrix_kmeans_cost_and_category_utility():
    rng = np.random.default_rng(0)
    partitions = [rng.integers(0, 3, 24), rng.integers(0, 4, 24), rng.integers(5, 7, 24)]
    labels = rng.integers(0, 3, 24)
    objective = consensus_objective(labels, partitions)
    assert objective == pytest.approx(naive_co_association_objective(labels.tolist(), [p.tolist() for p in partitions]))
    assert objective == pytest.approx(1 - naive_kmeans_cost(labels.tolist(), [p.tolist() for p in partitions]) / (24 * 3))
    utilities = sum(naive_category_utility(labels.tolist(), p.tolist()) for p in partitions)
    constant = sum(sum((list(p).count(j) / 24) ** 2 for j in set(p.tolist())) for p in partitions)
    assert utilities == pytest.approx(3 * objective - constant)


def test_identical_partitions_up_to_permutation_give_that_partition():
    truth = np.random.default_rng(1).integers(0, 5, 300)
    partitions = [truth, np.array([3, 0, 4, 1, 2])[truth], np.array([1, 2, 3, 4, 0])[truth]]
    result = consensus(partitions, 5, seed=0, n_init=2)
    pairs = set(zip(result.labels.tolist(), truth.tolist()))
    assert len(pairs) == 5 and len({a for a, _ in pairs}) == 5  # a one-to-one renaming of truth
    assert result.objective == pytest.approx(1.0) and result.member_objectives == pytest.approx([1.0] * 3)


def test_consensus_is_at_least_as_good_as_every_member_and_recovers_the_truth():
    truth = np.repeat(np.arange(4), 15)
    partitions = noisy_copies(truth, 5, flip=0.3, n_clusters=4, seed=2)
    result = consensus(partitions, 4, seed=0, n_init=3)
    naive = [p.tolist() for p in partitions]
    achieved = naive_co_association_objective(result.labels.tolist(), naive)
    assert achieved == pytest.approx(result.objective)
    for member, reported in zip(partitions, result.member_objectives):
        assert reported == pytest.approx(naive_co_association_objective(member.tolist(), naive))
        assert achieved >= reported - 1e-9
    best_member = max(cluster_accuracy(truth, member) for member in partitions)
    assert cluster_accuracy(truth, result.labels) > best_member  # the noise of the members averages out


def test_scales_to_seventy_thousand_images():
    truth = np.random.default_rng(3).integers(0, 10, 70_000)
    partitions = noisy_copies(truth, 4, flip=0.2, n_clusters=10, seed=3)
    result = consensus(partitions, 10, seed=0, n_init=1)
    assert result.labels.shape == (70_000,) and result.objective >= max(result.member_objectives) - 1e-6


@pytest.mark.parametrize("partitions, n_clusters, message", [
    ([], 2, "at least one partition"),
    ([np.zeros(5, dtype=int), np.zeros(4, dtype=int)], 2, "partition 1 labels 4 images, partition 0 labels 5"),
    ([np.zeros(5)], 2, "partition 0 must be a 1-D array of integer labels"),
    ([np.arange(5)], 6, r"n_clusters must be an integer in \[2, 5\]"),
])
def test_bad_input(partitions, n_clusters, message):
    with pytest.raises(ValueError, match=message):
        consensus(partitions, n_clusters)


def test_members_with_fewer_clusters_need_kmeans_starts():
    with pytest.raises(ValueError, match="no partition has 3 clusters to start from and n_init is 0"):
        consensus([np.array([0, 1, 0, 1])], 3, n_init=0)
    assert consensus([np.array([0, 1, 0, 1, 0, 1])], 3, n_init=1).labels.shape == (6,)
