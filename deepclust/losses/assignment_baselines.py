"""The collapse-prevention baselines HardReg is compared with (Mahon & Lukasiewicz, AAAI 2024,
Sec. "Experiments", comparison methods), on the same encoder and Gaussian cluster cost d (B, K).

Each baseline is an assignment rule and its objective in one, so, unlike the other losses, it is a
function returning an :class:`Assignment`: the hard labels a (B,) and the scalar training loss
(the rule is stated in docs/DEVELOPING.md, "Losses"). The weights (10, 0.1, 100) and the Sinkhorn
settings are those of the reference implementation. See ``docs/methods/hardreg.md``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from deepclust.cluster import sinkhorn_knopp
from deepclust.losses.assigned_cost import AssignedCostLoss

_assigned_mean = AssignedCostLoss()


class Assignment(NamedTuple):
    """A batch's hard labels (B,) and the scalar loss that trains the encoder and the means."""

    labels: torch.Tensor
    loss: torch.Tensor


def no_regulariser(costs: torch.Tensor) -> Assignment:
    """'no_reg': a(i) = argmin_c d_ic and L = (1/B) Σ_i min_c d_ic — plain online hard clustering,
    which collapses easily (HardReg, AAAI 2024, the unregularised comparison)."""
    minimum, labels = costs.min(dim=1)
    return Assignment(labels, minimum.mean())


def variance_regulariser(costs: torch.Tensor, improved: bool = False) -> Assignment:
    """'var' / 'var_improved' (HardReg, AAAI 2024, comparison methods): with m_c = (1/B) Σ_i d_ic,

        var:           L = 10 · (1/K) Σ_c m_c² + 0.1 · (1/B) Σ_i d_{i,a(i)}
        var_improved:  L = 10 · Var_c(m_c) + 0.1 · (1/B) Σ_i d_{i,a(i)}

    with a(i) = argmin_c d_ic. Var_c is the sample variance over the K clusters (denominator K − 1),
    as ``Tensor.var`` in the reference.
    """
    labels = costs.argmin(dim=1)
    per_cluster = costs.mean(dim=0)
    spread = per_cluster.var() if improved else (per_cluster ** 2).mean()
    return Assignment(labels, 10.0 * spread + 0.1 * _assigned_mean(costs, labels))


def _categorical_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of non-negative ``weights`` normalised to sum 1 (0 log 0 = 0)."""
    p = weights / weights.sum(dim=-1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(dim=-1)


def kl_regulariser(costs: torch.Tensor, centroid_term: bool = False) -> Assignment:
    """'kl' / 'kl_cent' (HardReg, AAAI 2024, comparison methods), treating rows of d as
    categorical distributions (normalised to sum 1, as ``torch.distributions.Categorical(d)`` in
    the reference), with a(i) = argmin_c d_ic:

        kl:       L = −100 · H( (1/B) Σ_i d_i· ) + 0.1 · (1/B) Σ_i H(d_i·)
        kl_cent:  L = −100 · H( (1/B) Σ_i d_i· ) + 0.1 · (1/B) Σ_i d_{i,a(i)}

    The costs must all have one sign: with the reference's constant −(nz/2)·log σ they are
    usually all negative, and dividing by their sum makes them probabilities all the same.
    """
    if bool((costs < 0).any()) and bool((costs > 0).any()):
        raise ValueError("the kl regulariser treats costs as unnormalised probabilities and needs costs of one "
                         f"sign; got values from {float(costs.min()):g} to {float(costs.max()):g}")
    labels = costs.argmin(dim=1)
    marginal_entropy = _categorical_entropy(costs.mean(dim=0))
    second = _assigned_mean(costs, labels) if centroid_term else _categorical_entropy(costs).mean()
    return Assignment(labels, -100.0 * marginal_entropy + 0.1 * second)


def sinkhorn_regulariser(costs: torch.Tensor, epsilon: float = 0.5, n_iters: int = 15,
                         pick: str = "argmin") -> Assignment:
    """'sinkhorn' (HardReg, AAAI 2024, comparison methods; SwAV-style equipartition): balanced soft
    assignments q = Sinkhorn-Knopp(−d, ε = 0.5, 15 iterations), a(i) from q, L = (1/B) Σ_i d_{i,a(i)}.

    ``pick="argmin"`` takes a(i) = argmin_c q_ic as the reference code does (almost certainly a
    bug: it picks each point's *least* likely cluster); ``pick="argmax"`` is the natural choice.
    """
    if pick not in ("argmin", "argmax"):
        raise ValueError(f"pick must be 'argmin' or 'argmax', got {pick!r}")
    balanced = sinkhorn_knopp(-costs.detach(), epsilon=epsilon, n_iters=n_iters)
    labels = balanced.argmin(dim=1) if pick == "argmin" else balanced.argmax(dim=1)
    return Assignment(labels, _assigned_mean(costs, labels))


def neural_gas(costs: torch.Tensor, counts: torch.Tensor | None = None, temperature: float = 1.0) -> Assignment:
    """'ng', a neural-gas loss (HardReg, AAAI 2024, comparison methods; Martinetz et al. 1993):
    with v_ic = 0.1 · d_ic + log(n_c + 1) (n = running counts, 0 unless kept across batches) and
    v_i(0) ≤ v_i(1) ≤ … each point's values sorted,

        L = (1/B) Σ_i Σ_r exp(−r / T) · v_i(r),     a(i) = argmin_c v_ic.

    The reference code squares v_i(r) inside the sum; the linear form above is used here.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    penalty = torch.zeros(costs.shape[1], dtype=costs.dtype, device=costs.device) if counts is None \
        else torch.log(counts.to(device=costs.device, dtype=costs.dtype) + 1.0)
    values = 0.1 * costs + penalty
    ordered, order = torch.sort(values, dim=1, stable=True)
    ranks = torch.arange(costs.shape[1], device=costs.device, dtype=costs.dtype)
    loss = (ordered * torch.exp(-ranks / temperature)).sum(dim=1).mean()
    return Assignment(order[:, 0], loss)


def kmeans_objective(z: torch.Tensor, means: torch.Tensor) -> Assignment:
    """'ckm', the k-means comparison (HardReg, AAAI 2024, comparison methods): the k-means
    objective on the encoder features, L = (1/B) Σ_i min_c ‖z_i − μ_c‖², a(i) = argmin_c ‖z_i − μ_c‖²
    (computed in float64)."""
    squared = (z.double()[:, None, :] - means.double()[None]).pow(2).sum(dim=-1)
    minimum, labels = squared.min(dim=1)
    return Assignment(labels, minimum.mean())
