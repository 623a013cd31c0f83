"""DCHL's in-batch seeded k-means against a naive loop (``support.naive_kmeans``)."""
import pytest
import torch
import torch.nn.functional as F

from deepclust.cluster import seeded_batch_kmeans
from support import naive_kmeans, separated_groups, unit_rows


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
    """Fidelity test 3 of docs/methods/dchl.md: seeded by the first M rows with B = M, labels = arange."""
    points = unit_rows(16, 8)
    groups = seeded_batch_kmeans(points, 16, 5)
    assert torch.equal(groups.labels, torch.arange(16))
    assert torch.allclose(groups.centroids, points)


@pytest.mark.parametrize("n_rows,n_groups", [(10, 16), (7, 400)])
def test_more_groups_than_rows_keeps_every_slot(n_rows, n_groups):
    """M > B as the reference: M centroid slots, the B rows seed the first B, which every row keeps
    (distance 0 to its own seed), and the M − B slots without a seed stay zero vectors."""
    points = unit_rows(n_rows, 8, seed=4)
    groups = seeded_batch_kmeans(points, n_groups, 5)
    assert groups.centroids.shape == (n_groups, 8)
    assert torch.equal(groups.labels, torch.arange(n_rows))
    assert torch.allclose(groups.centroids[:n_rows], points)
    assert torch.equal(groups.centroids[n_rows:], torch.zeros(n_groups - n_rows, 8))
    labels, centroids = naive_kmeans(points.tolist(), n_groups, 5)
    assert groups.labels.tolist() == labels
    assert torch.allclose(groups.centroids, torch.tensor(centroids), atol=1e-6)


def test_more_groups_than_rows_matches_naive_loop_with_duplicate_rows():
    """Duplicated rows tie on their first copy's seed (lowest index), leaving that seed's slot empty."""
    points = unit_rows(6, 3, seed=5)[[0, 1, 0, 2, 3, 1, 4, 5]]
    groups = seeded_batch_kmeans(points, 12, 5)
    labels, centroids = naive_kmeans(points.tolist(), 12, 5)
    assert groups.labels.tolist() == labels == [0, 1, 0, 3, 4, 1, 6, 7]
    assert torch.allclose(groups.centroids, torch.tensor(centroids), atol=1e-6)


def test_zero_centroid_of_an_empty_group_attracts_a_row_near_the_origin():
    """Hand-worked: seeds [1,0], [1,0], [0,1]. Iteration 1: rows 0, 1 and [0.05, 0] join group 0
    (ties → lowest index), group 1 is empty, so its centroid becomes 0. Iteration 2: [0.05, 0] is
    0.0025 from that zero centroid but 0.40 from group 0's mean [0.683, 0], so it moves to group 1."""
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.05, 0.0]])
    groups = seeded_batch_kmeans(points, 3, 5)
    assert groups.labels.tolist() == [0, 0, 2, 1]
    assert torch.allclose(groups.centroids, torch.tensor([[1.0, 0.0], [0.05, 0.0], [0.0, 1.0]]))
    labels, centroids = naive_kmeans(points.tolist(), 3, 5)
    assert groups.labels.tolist() == labels
    assert torch.allclose(groups.centroids, torch.tensor(centroids))


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
