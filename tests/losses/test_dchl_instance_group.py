"""DCHL's in-batch seeded k-means and instance-group discrimination against naive loop references."""
import math

import pytest
import torch
import torch.nn.functional as F

from deepclust.losses.instance_group import BatchGroups, InstanceGroupLoss, seeded_batch_kmeans


def naive_kmeans(points, n_groups, n_iterations):
    """Lloyd's algorithm with lists: seeds = first rows, squared Euclidean, first index on ties,
    an empty group counts 1 (centroid 0); labels of the last assignment, centroids their means."""
    points = [[float(v) for v in row] for row in points]
    dim = len(points[0])
    centroids = [list(row) for row in points[:n_groups]]
    for _ in range(n_iterations):
        labels = []
        for p in points:
            distances = [sum((a - b) ** 2 for a, b in zip(p, c)) for c in centroids]
            labels.append(distances.index(min(distances)))
        centroids = []
        for k in range(len(distances)):
            members = [p for p, label in zip(points, labels) if label == k]
            count = max(len(members), 1)
            centroids.append([sum(p[d] for p in members) / count for d in range(dim)])
    return labels, centroids


def naive_cross_entropy(queries, centroids, labels, temperature):
    total = 0.0
    for q, label in zip(queries.tolist(), labels):
        logits = [sum(a * b for a, b in zip(q, c)) / temperature for c in centroids]
        total += math.log(sum(math.exp(v) for v in logits)) - logits[label]
    return total / len(labels)


def naive_instance_group(q1, q2, g1, g2, n_groups, n_iterations, temperature):
    labels_1, centroids_1 = naive_kmeans(g1.tolist(), n_groups, n_iterations)
    labels_2, centroids_2 = naive_kmeans(g2.tolist(), n_groups, n_iterations)
    return 0.5 * (naive_cross_entropy(q2, centroids_1, labels_2, temperature)
                  + naive_cross_entropy(q1, centroids_2, labels_1, temperature))


def unit_rows(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def separated_groups(n_per_group=3, n_groups=4, dim=8, noise=0.05, seed=0):
    """Unit vectors around orthogonal centres; rows 0..n_groups-1 hold one member of each group."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:n_groups]
    rows = centres.repeat(n_per_group, 1) + noise * torch.randn(n_per_group * n_groups, dim, generator=generator)
    return F.normalize(rows, dim=1), torch.arange(n_groups).repeat(n_per_group)


# --- the seeded batch k-means ---------------------------------------------------------------
@pytest.mark.parametrize("n_groups,n_iterations,seed", [(4, 5, 0), (5, 5, 1), (3, 1, 2), (6, 2, 3)])
def test_kmeans_matches_naive_loop(n_groups, n_iterations, seed):
    points = unit_rows(20, 3, seed=seed)
    groups = seeded_batch_kmeans(points, n_groups, n_iterations)
    labels, centroids = naive_kmeans(points.tolist(), n_groups, n_iterations)
    assert groups.labels.tolist() == labels
    assert torch.allclose(groups.centroids, torch.tensor(centroids), atol=1e-6)


def test_empty_group_keeps_count_one_and_a_zero_centroid():
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    groups = seeded_batch_kmeans(points, 3, 5)
    # rows 0 and 1 seed groups 0 and 1 identically; ties go to group 0, so group 1 stays empty
    assert groups.labels.tolist() == [0, 0, 2, 0]
    assert torch.equal(groups.centroids[1], torch.zeros(2))
    labels, centroids = naive_kmeans(points.tolist(), 3, 5)
    assert groups.labels.tolist() == labels
    assert torch.allclose(groups.centroids, torch.tensor(centroids))


def test_batch_equal_to_groups_makes_every_point_its_own_group():
    """Spec fidelity test 3: seeded by the first M rows with B = M, labels = arange."""
    points = unit_rows(16, 8)
    groups = seeded_batch_kmeans(points, 16, 5)
    assert torch.equal(groups.labels, torch.arange(16))
    assert torch.allclose(groups.centroids, points)


def test_more_groups_than_rows_uses_one_group_per_row():
    """Decision M > B: M' = min(M, B) groups, so every row is its own group."""
    points = unit_rows(10, 8, seed=4)
    groups = seeded_batch_kmeans(points, 400, 5)
    assert groups.centroids.shape == (10, 8)
    assert torch.equal(groups.labels, torch.arange(10))


def test_groups_of_two_views_correspond_by_seed_index():
    """Group j of each view is seeded by image j, so slightly different views get the same labels."""
    view_1, _ = separated_groups(seed=5)
    view_2 = F.normalize(view_1 + 0.01 * torch.randn(view_1.shape, generator=torch.Generator().manual_seed(6)), dim=1)
    labels_1 = seeded_batch_kmeans(view_1, 4).labels
    labels_2 = seeded_batch_kmeans(view_2, 4).labels
    assert torch.equal(labels_1, labels_2)
    assert torch.equal(labels_1, torch.arange(4).repeat(3))


def test_centroids_keep_gradient_labels_do_not():
    points = unit_rows(9, 4, seed=7).requires_grad_(True)
    groups = seeded_batch_kmeans(points, 3)
    assert not groups.labels.requires_grad and groups.labels.dtype == torch.long
    weights = torch.randn(3, 4, generator=torch.Generator().manual_seed(8))
    (groups.centroids * weights).sum().backward()
    counts = torch.bincount(groups.labels, minlength=3).float()
    expected = weights[groups.labels] / counts[groups.labels].unsqueeze(1)  # d mean / d member = 1/count
    assert torch.allclose(points.grad, expected)


@pytest.mark.parametrize("kwargs,match", [
    (dict(embeddings=torch.zeros(4)), "B×D"),
    (dict(embeddings=torch.zeros(4, 2), n_groups=0), "n_groups"),
    (dict(embeddings=torch.zeros(4, 2), n_groups=2, n_iterations=0), "n_iterations"),
])
def test_kmeans_bad_input(kwargs, match):
    kwargs.setdefault("n_groups", 2)
    with pytest.raises(ValueError, match=match):
        seeded_batch_kmeans(**kwargs)


# --- instance-group discrimination ----------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_matches_naive_loop_with_other_queries(seed):
    """The cross form: instance queries z scored against centroids of the group embeddings g."""
    g1, g2 = unit_rows(12, 6, seed=seed), unit_rows(12, 6, seed=seed + 10)
    z1, z2 = unit_rows(12, 6, seed=seed + 20), unit_rows(12, 6, seed=seed + 30)
    loss = InstanceGroupLoss(0.2)(z1, z2, seeded_batch_kmeans(g1, 4), seeded_batch_kmeans(g2, 4))
    assert abs(float(loss) - naive_instance_group(z1, z2, g1, g2, 4, 5, 0.2)) < 1e-5


def test_self_loss_small_and_exact_for_identical_separated_views():
    """Spec fidelity test 4: g1 = g2 with well separated groups gives a small L_self, equal to the loop."""
    g, _ = separated_groups()
    groups = seeded_batch_kmeans(g, 4)
    loss = float(InstanceGroupLoss(0.2)(g, g.clone(), groups, seeded_batch_kmeans(g.clone(), 4)))
    assert abs(loss - naive_instance_group(g, g, g, g, 4, 5, 0.2)) < 1e-5
    assert loss < 0.05
    # for contrast: the same views with unrelated groups are far from small
    scrambled = unit_rows(12, 8, seed=9)
    assert float(InstanceGroupLoss(0.2)(scrambled, g, seeded_batch_kmeans(scrambled, 4), groups)) > 1.0


def test_loss_is_symmetric_in_the_views():
    g1, g2 = unit_rows(10, 5, seed=11), unit_rows(10, 5, seed=12)
    groups_1, groups_2 = seeded_batch_kmeans(g1, 3), seeded_batch_kmeans(g2, 3)
    loss = InstanceGroupLoss(0.2)
    assert torch.allclose(loss(g1, g2, groups_1, groups_2), loss(g2, g1, groups_2, groups_1))


def test_hand_value_one_direction():
    """Two groups, unit queries on the centroids: CE = log(1 + e^{-1/τ}) per row."""
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    groups = BatchGroups(labels=torch.tensor([0, 1]), centroids=centroids)
    loss = InstanceGroupLoss(0.5)(centroids, centroids, groups, groups)
    assert abs(float(loss) - math.log(1 + math.exp(-2.0))) < 1e-6


def test_loss_bad_input():
    groups = seeded_batch_kmeans(unit_rows(6, 4), 2)
    with pytest.raises(ValueError, match="B×D"):
        InstanceGroupLoss()(unit_rows(6, 4), unit_rows(5, 4), groups, groups)
    with pytest.raises(ValueError, match="groups_1"):
        InstanceGroupLoss()(unit_rows(6, 3), unit_rows(6, 3), groups, groups)
    with pytest.raises(ValueError, match="temperature"):
        InstanceGroupLoss(0.0)
