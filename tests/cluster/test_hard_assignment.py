"""HardReg's cost and greedy hard-regularised assignment against naive references (fidelity tests 1-2
of docs/methods/hardreg.md)."""
import math

import numpy as np
import pytest
import torch

from deepclust.cluster import gaussian_cost, hard_regularised_assignment
from deepclust.losses import no_regulariser


def naive_greedy(d, counts=None, log_prior=None):
    """The loop of docs/methods/hardreg.md, literally: B times, the smallest d_ic + log(n_c + 1) (− log π_c) over the
    unassigned points and all clusters, first minimum in row-major order."""
    n_points, n_clusters = d.shape
    n = np.zeros(n_clusters, dtype=np.int64) if counts is None else np.array(counts, dtype=np.int64)
    free = np.ones(n_points, dtype=bool)
    labels = np.full(n_points, -1)
    for _ in range(n_points):
        table = d + np.log(n + 1)
        if log_prior is not None:
            table = table - log_prior
        table[~free] = np.inf
        point, cluster = divmod(int(np.argmin(table)), n_clusters)
        free[point] = False
        labels[point] = cluster
        n[cluster] += 1
    return labels, n


def run(d, counts=None, log_prior=None):
    labels, n = hard_regularised_assignment(
        torch.from_numpy(d), None if counts is None else torch.tensor(counts),
        None if log_prior is None else torch.from_numpy(log_prior))
    return labels.numpy(), n.numpy()


def test_gaussian_cost_matches_explicit_loops():
    torch.manual_seed(0)
    z, means, sigma = torch.randn(5, 3), torch.randn(4, 3), 100.0
    costs = gaussian_cost(z, means, sigma)
    assert costs.dtype == torch.float64 and costs.shape == (5, 4)
    inverse = torch.eye(3, dtype=torch.float64) / sigma
    for i in range(5):
        for c in range(4):
            diff = z[i].double() - means[c].double()
            # the reference's constant: − (nz/2)·log σ = + ½ log det Σ⁻¹
            expected = float(diff @ inverse @ diff + 0.5 * torch.logdet(inverse))
            assert expected == pytest.approx(float(diff @ diff) / sigma - 1.5 * math.log(sigma), rel=1e-12)
            assert float(costs[i, c]) == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_identical_points_equal_distances_spread_evenly_no_reg_collapses():
    """Fidelity test 1: identical points, centroids all at the same distance."""
    n_points, n_clusters, nz = 23, 4, 6
    z = torch.zeros(n_points, nz)
    means = torch.zeros(n_clusters, nz)
    means[torch.arange(n_clusters), torch.arange(n_clusters)] = 2.0   # all at distance 2
    costs = gaussian_cost(z, means, 100.0)
    assert torch.all(costs == costs[0, 0])
    labels, counts = hard_regularised_assignment(costs)
    sizes = np.bincount(labels.numpy(), minlength=n_clusters)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n_points
    assert counts.tolist() == sizes.tolist()
    unregularised = no_regulariser(costs).labels.numpy()
    assert len(set(unregularised.tolist())) == 1


def test_unequal_distances_follow_water_filling():
    """Fidelity test 1, second part: every point at costs (0, 1, 2.5) from three clusters. The greedy
    takes the 12 smallest marginal costs d_c + log(k), k = 1, 2, ...: by hand 0, .693 (c0), 1 (c1),
    1.099, 1.386, 1.609 (c0), 1.693 (c1), 1.792, 1.946, 2.079 (c0), 2.099 (c1), 2.197 (c0)."""
    d = np.tile([0.0, 1.0, 2.5], (12, 1))
    labels, counts = run(d)
    assert counts.tolist() == [9, 3, 0]
    naive_labels, naive_counts = naive_greedy(d)
    assert np.array_equal(labels, naive_labels) and np.array_equal(counts, naive_counts)
    # water-filling: no point could move to another cluster at a lower marginal cost
    for c in range(3):
        for other in range(3):
            if counts[c] and other != c:
                assert d[0, c] + math.log(counts[c]) <= d[0, other] + math.log(counts[other] + 1)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_naive_loop_on_random_costs(seed):
    """Fidelity test 2: random 20x4 costs."""
    d = np.random.default_rng(seed).random((20, 4)) * 3
    labels, counts = run(d)
    naive_labels, naive_counts = naive_greedy(d)
    assert np.array_equal(labels, naive_labels)
    assert np.array_equal(counts, naive_counts)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_naive_loop_with_ties(seed):
    """Integer costs make many exact ties (also between clusters after the log penalties)."""
    d = np.random.default_rng(100 + seed).integers(0, 3, size=(20, 4)).astype(np.float64)
    labels, _ = run(d)
    assert np.array_equal(labels, naive_greedy(d)[0])


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_naive_loop_with_counts_and_prior(seed):
    rng = np.random.default_rng(200 + seed)
    d = rng.random((32, 7)) * 4
    counts = rng.integers(0, 5, size=7)
    log_prior = np.log(rng.random(7) + 0.1)
    labels, n = run(d, counts, log_prior)
    naive_labels, naive_n = naive_greedy(d, counts, log_prior)
    assert np.array_equal(labels, naive_labels) and np.array_equal(n, naive_n)


def test_prior_shifts_sizes_towards_it():
    """With identical points, the sizes follow the prior instead of being equal."""
    d = np.zeros((100, 2))
    _, counts = run(d, log_prior=np.log(np.array([0.8, 0.2])))
    assert counts.tolist() == naive_greedy(d, log_prior=np.log(np.array([0.8, 0.2])))[1].tolist()
    assert 75 <= counts[0] <= 85


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="non-empty"):
        hard_regularised_assignment(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="NaN"):
        hard_regularised_assignment(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="counts must have shape"):
        hard_regularised_assignment(torch.zeros(2, 3), counts=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="expects z"):
        gaussian_cost(torch.zeros(2, 3), torch.zeros(4, 5), 1.0)
