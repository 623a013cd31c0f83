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
