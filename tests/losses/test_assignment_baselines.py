"""HardReg's comparison baselines against naive loop references."""
import math

import numpy as np
import pytest
import torch

from deepclust.losses import (
    kl_regulariser, kmeans_objective, neural_gas, no_regulariser, sinkhorn_regulariser, variance_regulariser,
)
from support import naive_sinkhorn

B, K = 6, 3


@pytest.fixture
def costs():
    return torch.from_numpy(np.random.default_rng(0).random((B, K)) * 5 + 0.5)


def rows(costs):
    return costs.tolist()


def argmins(table):
    return [min(range(len(row)), key=lambda c: row[c]) for row in table]


def assigned_mean(table, labels):
    return sum(table[i][labels[i]] for i in range(len(table))) / len(table)


def entropy(weights):
    total = sum(weights)
    return -sum(w / total * math.log(w / total) for w in weights if w / total > 0)


def test_no_regulariser(costs):
    table = rows(costs)
    result = no_regulariser(costs)
    assert result.labels.tolist() == argmins(table)
    assert float(result.loss) == pytest.approx(sum(min(row) for row in table) / B)


@pytest.mark.parametrize("improved", [False, True])
def test_variance_regulariser(costs, improved):
    table = rows(costs)
    labels = argmins(table)
    means = [sum(table[i][c] for i in range(B)) / B for c in range(K)]
    if improved:
        average = sum(means) / K
        spread = sum((m - average) ** 2 for m in means) / (K - 1)
    else:
        spread = sum(m * m for m in means) / K
    result = variance_regulariser(costs, improved=improved)
    assert result.labels.tolist() == labels
    assert float(result.loss) == pytest.approx(10 * spread + 0.1 * assigned_mean(table, labels))


@pytest.mark.parametrize("centroid_term", [False, True])
def test_kl_regulariser(costs, centroid_term):
    table = rows(costs)
    labels = argmins(table)
    marginal = [sum(table[i][c] for i in range(B)) / B for c in range(K)]
    second = assigned_mean(table, labels) if centroid_term else sum(entropy(row) for row in table) / B
    result = kl_regulariser(costs, centroid_term=centroid_term)
    assert result.labels.tolist() == labels
    assert float(result.loss) == pytest.approx(-100 * entropy(marginal) + 0.1 * second)


def test_kl_regulariser_rejects_costs_of_both_signs():
    with pytest.raises(ValueError, match="costs of one sign"):
        kl_regulariser(torch.tensor([[-1.0, 2.0]]))


@pytest.mark.parametrize("pick", ["argmin", "argmax"])
def test_sinkhorn_regulariser(costs, pick):
    table = rows(costs)
    balanced = naive_sinkhorn([[-cost for cost in row] for row in table], 0.5, 15)  # scores = −costs
    expected = [(min if pick == "argmin" else max)(range(K), key=lambda c: row[c]) for row in balanced]
    result = sinkhorn_regulariser(costs, epsilon=0.5, n_iters=15, pick=pick)
    assert result.labels.tolist() == expected
    assert float(result.loss) == pytest.approx(assigned_mean(table, expected))
    with pytest.raises(ValueError, match="pick"):
        sinkhorn_regulariser(costs, pick="median")


def test_neural_gas(costs):
    table = rows(costs)
    counts = [0, 3, 1]
    values = [[0.1 * row[c] + math.log(counts[c] + 1) for c in range(K)] for row in table]
    temperature = 0.7
    expected = sum(sum(v * math.exp(-r / temperature) for r, v in enumerate(sorted(row))) for row in values) / B
    result = neural_gas(costs, torch.tensor(counts), temperature=temperature)
    assert result.labels.tolist() == argmins(values)
    assert float(result.loss) == pytest.approx(expected)


def test_kmeans_objective():
    rng = np.random.default_rng(1)
    z, means = rng.normal(size=(B, 4)), rng.normal(size=(K, 4))
    distances = [[sum((z[i][d] - means[c][d]) ** 2 for d in range(4)) for c in range(K)] for i in range(B)]
    result = kmeans_objective(torch.from_numpy(z).float(), torch.from_numpy(means).float())
    assert result.labels.tolist() == argmins(distances)
    assert float(result.loss) == pytest.approx(sum(min(row) for row in distances) / B, rel=1e-6)


def test_losses_are_differentiable(costs):
    costs = costs.clone().requires_grad_(True)
    for result in (no_regulariser(costs), variance_regulariser(costs), kl_regulariser(costs),
                   sinkhorn_regulariser(costs), neural_gas(costs)):
        grad, = torch.autograd.grad(result.loss, costs)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_variance_regulariser_gradient_with_the_reference_cost_equals_a_naive_loop():
    """'var' on the reference's cost d_ic = Σ_k (z_ik − μ_ck)² / σ − (nz/2) log σ, differentiated by
    autograd through a per-element python loop, against gaussian_cost + variance_regulariser."""
    from deepclust.cluster import gaussian_cost

    generator = torch.Generator().manual_seed(0)
    n, k, nz, sigma = 5, 3, 4, 100.0
    z = torch.randn(n, nz, generator=generator, dtype=torch.float64, requires_grad=True)
    means = torch.randn(k, nz, generator=generator, dtype=torch.float64, requires_grad=True)
    variance_regulariser(gaussian_cost(z, means, sigma)).loss.backward()

    z_naive = z.detach().clone().requires_grad_(True)
    means_naive = means.detach().clone().requires_grad_(True)
    constant = nz / 2 * math.log(sigma)
    d = [[sum((z_naive[i, j] - means_naive[c, j]) ** 2 for j in range(nz)) / sigma - constant for c in range(k)]
         for i in range(n)]
    assert all(float(value.detach()) < 0 for row in d for value in row)   # the constant (≈ −9.2) dominates here
    per_cluster = [sum(d[i][c] for i in range(n)) / n for c in range(k)]
    labels = [min(range(k), key=lambda c: float(d[i][c].detach())) for i in range(n)]
    loss = 10 * sum(m * m for m in per_cluster) / k + 0.1 * sum(d[i][labels[i]] for i in range(n)) / n
    loss.backward()
    assert torch.allclose(z.grad, z_naive.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(means.grad, means_naive.grad, rtol=1e-10, atol=1e-12)
    # the sign matters for 'var': with + (nz/2) log σ the gradient differs
    z_plus = z.detach().clone().requires_grad_(True)
    plus = gaussian_cost(z_plus, means.detach(), sigma) + 2 * constant
    variance_regulariser(plus).loss.backward()
    assert not torch.allclose(z_plus.grad, z.grad)


def test_kl_regulariser_takes_all_negative_costs_as_the_reference():
    """With the reference's constant the costs are usually all negative; normalised by their sum they
    are probabilities (torch's Categorical(d) in the reference)."""
    negative = -torch.from_numpy(np.random.default_rng(1).random((B, K)) * 5 + 0.5)
    table = rows(negative)
    labels = argmins(table)
    marginal = [sum(table[i][c] for i in range(B)) / B for c in range(K)]
    result = kl_regulariser(negative)
    assert result.labels.tolist() == labels
    assert float(result.loss) == pytest.approx(-100 * entropy(marginal) + 0.1 * sum(entropy(row) for row in table) / B)
