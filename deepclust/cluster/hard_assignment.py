"""HardReg's Gaussian cluster cost and its hard-regularised batch assignment.

Mahon & Lukasiewicz, "Hard Regularization to Prevent Deep Online Clustering Collapse without Data
Augmentation", AAAI 2024 (Sec. "Method": a Gaussian per cluster; the MAP assignment of a batch
under a prior that the batch's cluster sizes follow the expected proportions, solved greedily).
The loss on the assignment is :class:`~deepclust.losses.assigned_cost.AssignedCostLoss`; see
``docs/methods/hardreg.md``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["gaussian_cost", "hard_regularised_assignment"]


def gaussian_cost(z: torch.Tensor, means: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cost d_ic of point i in cluster c, in float64 (HardReg, AAAI 2024, the cluster model), with
    the reference implementation's constant:

        d_ic = (z_i − μ_c)ᵀ Σ⁻¹ (z_i − μ_c) − (nz / 2) · log σ,   Σ = σ I,
             = ‖z_i − μ_c‖² / σ + ½ log det Σ⁻¹.

    The Gaussian's negative log-likelihood (up to the factor ½ on the quadratic term, which the
    reference leaves out too) would add ½ log det Σ = (nz/2)·log σ; the reference subtracts it
    (it names the constant ``half_log_det_inv_covars``), and so does this function. The constant is the same for
    every cluster: it moves no assignment, only the loss value and the baselines that square or
    normalise costs (``var``, ``kl``, ``ng``). Float64 as in the reference: the constant (≈ −295 for
    nz = 128, σ = 100) would otherwise eat the float32 resolution of the distances that decide
    the assignment.
    """
    if z.ndim != 2 or means.ndim != 2 or z.shape[1] != means.shape[1]:
        raise ValueError(f"gaussian_cost expects z (B, nz) and means (K, nz), got {tuple(z.shape)} "
                         f"and {tuple(means.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    z, means = z.double(), means.double()
    squared = (z * z).sum(1, keepdim=True) - 2.0 * z @ means.T + (means * means).sum(1)
    return squared.clamp_min(0.0) / sigma - 0.5 * z.shape[1] * math.log(sigma)


def hard_regularised_assignment(costs: torch.Tensor, counts: torch.Tensor | None = None,
                                log_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy hard-regularised assignment of a batch (HardReg, AAAI 2024, the batch MAP assignment).

    With running counts n_c (``counts``, default 0), repeat B times: among the unassigned points i
    and all clusters c pick the pair with the smallest

        d_ic + log(n_c + 1) − log π_c      (the − log π_c term only when ``log_prior`` is given),

    assign i to c and increment n_c. Ties go to the lowest flat index i·K + c (lowest point, then
    lowest cluster), as a naive loop taking the first minimum would.

    Instead of the naive O(B²K) scan this keeps, per cluster, its points sorted by cost (stable)
    and a pointer to the cheapest unassigned one: since the penalty depends on the cluster only,
    each cluster's best candidate is that point, and a step compares K candidates. The values
    compared are computed with the same float64 operations in the same order as the naive loop,
    so the assignments are identical. O(BK log B) in all.

    Returns the assignments (B,) int64 and the counts after the batch (K,) int64, on the input's
    device. The costs are not differentiated (the choice is discrete).
    """
    if costs.ndim != 2 or costs.shape[0] == 0 or costs.shape[1] == 0:
        raise ValueError(f"costs must be a non-empty (B, K) matrix, got shape {tuple(costs.shape)}")
    d = costs.detach().double().cpu().numpy()
    n_points, n_clusters = d.shape
    if not np.isfinite(d).all():
        raise ValueError("costs contain NaN or infinite values")
    n = np.zeros(n_clusters, dtype=np.int64) if counts is None else counts.detach().cpu().numpy().astype(np.int64)
    if n.shape != (n_clusters,):
        raise ValueError(f"counts must have shape ({n_clusters},), got {n.shape}")
    prior = None
    if log_prior is not None:
        prior = log_prior.detach().double().cpu().numpy()
        if prior.shape != (n_clusters,):
            raise ValueError(f"log_prior must have shape ({n_clusters},), got {prior.shape}")
    order = np.argsort(d, axis=0, kind="stable")           # column c: points by increasing d_ic
    sorted_costs = np.take_along_axis(d, order, axis=0)
    pointer = np.zeros(n_clusters, dtype=np.int64)
    columns = np.arange(n_clusters)
    assigned = np.zeros(n_points, dtype=bool)
    labels = np.empty(n_points, dtype=np.int64)
    for _ in range(n_points):
        candidates = order[pointer, columns]
        stale = assigned[candidates]
        while stale.any():                                   # skip points taken by other clusters
            pointer[stale] += 1
            candidates = order[pointer, columns]
            stale = assigned[candidates]
        values = sorted_costs[pointer, columns] + np.log(n + 1)
        if prior is not None:
            values = values - prior
        tied = np.flatnonzero(values == values.min())
        cluster = tied[np.argmin(candidates[tied])] if tied.size > 1 else tied[0]
        point = candidates[cluster]
        assigned[point] = True
        labels[point] = cluster
        n[cluster] += 1
    return torch.from_numpy(labels).to(costs.device), torch.from_numpy(n).to(costs.device)
