"""DCHL's instance-group discrimination against naive loop references."""
import math

import pytest
import torch

from deepclust.cluster import BatchGroups, seeded_batch_kmeans
from deepclust.losses import InstanceGroupLoss
from support import naive_kmeans, separated_groups, unit_rows


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


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_matches_naive_loop_with_other_queries(seed):
    """The cross form: instance queries z scored against centroids of the group embeddings g."""
    g1, g2 = unit_rows(12, 6, seed=seed), unit_rows(12, 6, seed=seed + 10)
    z1, z2 = unit_rows(12, 6, seed=seed + 20), unit_rows(12, 6, seed=seed + 30)
    loss = InstanceGroupLoss(0.2)(z1, z2, seeded_batch_kmeans(g1, 4), seeded_batch_kmeans(g2, 4))
    assert abs(float(loss) - naive_instance_group(z1, z2, g1, g2, 4, 5, 0.2)) < 1e-5


def naive_centroids(points, labels, n_groups):
    """Group means written as a loop over the M slots (autograd kept); an empty slot is the zero vector."""
    rows = []
    for k in range(n_groups):
        members = [points[i] for i, label in enumerate(labels) if label == k]
        rows.append(sum(members) / len(members) if members else torch.zeros(points.shape[1]))
    return torch.stack(rows)


def naive_cross_entropy_over_slots(queries, centroids, labels, temperature):
    """CE averaged over rows, one row at a time, over every centroid slot (autograd kept)."""
    total = 0
    for q, label in zip(queries, labels):
        logits = torch.stack([q @ c for c in centroids]) / temperature
        total = total + torch.log(torch.exp(logits).sum()) - logits[label]
    return total / len(labels)


@pytest.mark.parametrize("n_rows,n_groups", [(10, 16), (12, 4)])
def test_loss_and_gradients_match_naive_loop_over_all_slots(n_rows, n_groups):
    """M > B as the reference: the CE runs over all M slots, the empty ones with logit 0; value and
    gradients with respect to g and z equal a naive loop (M ≤ B checked the same way)."""
    g1, g2 = unit_rows(n_rows, 6, seed=40), unit_rows(n_rows, 6, seed=41)
    z1, z2 = unit_rows(n_rows, 6, seed=42), unit_rows(n_rows, 6, seed=43)
    inputs = [t.clone().requires_grad_(True) for t in (g1, g2, z1, z2)]
    ours = [t.clone().requires_grad_(True) for t in (g1, g2, z1, z2)]

    loss_fn = InstanceGroupLoss(0.2)
    groups_1, groups_2 = seeded_batch_kmeans(ours[0], n_groups), seeded_batch_kmeans(ours[1], n_groups)
    loss = loss_fn(ours[0], ours[1], groups_1, groups_2) + loss_fn(ours[2], ours[3], groups_1, groups_2)
    loss.backward()

    ng1, ng2, nz1, nz2 = inputs
    labels_1, _ = naive_kmeans(g1.tolist(), n_groups, 5)
    labels_2, _ = naive_kmeans(g2.tolist(), n_groups, 5)
    centroids_1, centroids_2 = naive_centroids(ng1, labels_1, n_groups), naive_centroids(ng2, labels_2, n_groups)
    expected = 0
    for q1, q2 in ((ng1, ng2), (nz1, nz2)):
        expected = expected + 0.5 * (naive_cross_entropy_over_slots(q2, centroids_1, labels_2, 0.2)
                                     + naive_cross_entropy_over_slots(q1, centroids_2, labels_1, 0.2))
    expected.backward()

    assert groups_1.centroids.shape == (n_groups, 6)
    assert abs(loss.item() - expected.item()) < 1e-5
    for got, want in zip(ours, inputs):
        assert torch.allclose(got.grad, want.grad, atol=1e-5)


def test_empty_slots_enter_the_softmax_with_logit_zero():
    """Hand value: B = 2 rows on orthogonal unit vectors, M = 5 slots, τ = 0.5: the two filled slots
    give logits 2 and 0, the three empty ones 0, so CE = log(e² + 4) − 2 per row."""
    rows = torch.eye(2)
    groups = seeded_batch_kmeans(rows, 5)
    loss = InstanceGroupLoss(0.5)(rows, rows, groups, groups)
    assert abs(float(loss) - (math.log(math.exp(2.0) + 4) - 2.0)) < 1e-6


def test_self_loss_small_and_exact_for_identical_separated_views():
    """Fidelity test 4 of docs/methods/dchl.md: g1 = g2 with well separated groups gives a small L_self,
    equal to the loop."""
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
