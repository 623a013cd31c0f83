"""Consensus clustering: the partition into K clusters that agrees most with several partitions.

K-means-based consensus clustering (KCC; Wu, Liu, Xiong, Cao, Chen, "K-means-based Consensus
Clustering: A Unified View", IEEE TKDE 27(1), 2015): with the category utility U_c as the
consensus function, maximising Σ_i U_c(π, π_i) over the partitions π into K clusters is k-means
(squared Euclidean) on the binary matrix B whose row for image x concatenates the one-hot
memberships of x in the r member partitions π_1 … π_r.

The objective reported here, with n_k = |C_k| and n_kj⁽ⁱ⁾ the images of C_k in cluster j of π_i:

    J(π) = 1/(N r) · Σ_i Σ_k Σ_j (n_kj⁽ⁱ⁾)² / n_k
         = 1/(N r) · Σ_k (1/n_k) · Σ_{x,y ∈ C_k} A_xy       A_xy = #{i : π_i(x) = π_i(y)}, the co-association counts
         = 1 − SSE(π) / (N r)                              SSE: the k-means cost of π on B,

and Σ_i U_c(π, π_i) = r·J(π) − Σ_i Σ_j (n_j⁽ⁱ⁾ / N)², so all three are optimised by the same π.
J lies in (0, 1] (1: every cluster lies inside one cluster of every member). Nothing of size N × N is
built — for 70,000 images the co-association matrix would hold 4.9·10⁹ entries —: k-means runs on
B (N × Σ_i K_i) and J is computed from the contingency tables.

Search: Lloyd's k-means on B from one start per member partition with at least K clusters (the
means of its K largest clusters) and from ``n_init`` greedy k-means++ starts; the partition with
the highest J is kept. Lloyd's iterations never lower J, so the result is at least as good as
every member with K clusters (up to the float32 rounding of the distances).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .kmeans import kmeans


@dataclass
class ConsensusResult:
    """labels: (N,) int64 in 0..K-1; objective: J of ``labels``; member_objectives: J of each member."""

    labels: np.ndarray
    objective: float
    member_objectives: list[float] = field(default_factory=list)


def _codes(partitions: Sequence) -> list[np.ndarray]:
    """Each partition as codes 0..K_i−1 (any integer labels, −1 included, are just names)."""
    if isinstance(partitions, np.ndarray) and partitions.ndim == 2:
        partitions = list(partitions)
    if len(partitions) == 0:
        raise ValueError("consensus needs at least one partition, got none")
    codes = []
    for index, partition in enumerate(partitions):
        labels = np.asarray(partition.cpu() if isinstance(partition, torch.Tensor) else partition)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"partition {index} must be a 1-D array of integer labels, got {labels.dtype} "
                             f"of shape {labels.shape}")
        if len(labels) != len(np.asarray(partitions[0])):
            raise ValueError(f"partition {index} labels {len(labels)} images, partition 0 labels "
                             f"{len(np.asarray(partitions[0]))}: every partition must label the same images")
        codes.append(np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1))
    if len(codes[0]) == 0:
        raise ValueError("the partitions label no images")
    return codes


def _objective(labels: np.ndarray, codes: list[np.ndarray]) -> float:
    """J of ``labels`` (codes 0..K−1) against the member ``codes``, from contingency tables."""
    n_clusters = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    used = sizes > 0
    total = 0.0
    for member in codes:
        width = int(member.max()) + 1
        table = np.bincount(labels * width + member, minlength=n_clusters * width).reshape(n_clusters, width)
        total += float(((table[used].astype(np.float64) ** 2).sum(axis=1) / sizes[used]).sum())
    return total / (len(labels) * len(codes))


def consensus_objective(labels, partitions: Sequence) -> float:
    """J(π) of the partition ``labels`` against the member ``partitions`` (see the module docstring)."""
    (labels,), codes = _codes([labels]), _codes(partitions)
    if len(labels) != len(codes[0]):
        raise ValueError(f"labels has {len(labels)} entries, the partitions label {len(codes[0])} images")
    return _objective(labels, codes)


def _memberships(codes: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """B: (N, Σ_i K_i) float32, row x the concatenated one-hot memberships of x."""
    blocks = [torch.nn.functional.one_hot(torch.from_numpy(member), int(member.max()) + 1) for member in codes]
    return torch.cat(blocks, dim=1).to(device=device, dtype=torch.float32)


def _member_start(memberships: torch.Tensor, member: np.ndarray, n_clusters: int) -> torch.Tensor | None:
    """The means of B over the K largest clusters of ``member``; None when it has fewer than K."""
    counts = np.bincount(member)
    if len(counts) < n_clusters:
        return None
    largest = torch.from_numpy(np.argsort(-counts, kind="stable")[:n_clusters].copy())
    index = torch.from_numpy(member).to(memberships.device)
    sums = torch.zeros(len(counts), memberships.shape[1], device=memberships.device).index_add_(0, index, memberships)
    sizes = torch.from_numpy(counts).to(memberships.device, torch.float32)
    return (sums / sizes.unsqueeze(1))[largest.to(memberships.device)]


def consensus(partitions: Sequence, n_clusters: int, *, seed: int = 0, n_init: int = 10,
              device: str | torch.device = "cpu") -> ConsensusResult:
    """The consensus of ``partitions`` (r label arrays over the same N images, or an r × N array)
    into ``n_clusters`` clusters by K-means-based consensus clustering (module docstring).

    seed: seeds the k-means++ starts; n_init: how many (0: only the members' starts); device:
    where the k-means runs.
    """
    codes = _codes(partitions)
    n_samples = len(codes[0])
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 2 <= n_clusters <= n_samples:
        raise ValueError(f"n_clusters must be an integer in [2, {n_samples}] (the images), got {n_clusters!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 0:
        raise ValueError(f"n_init must be an integer >= 0, got {n_init!r}")
    memberships = _memberships(codes, torch.device(device))
    starts = [start for member in codes if (start := _member_start(memberships, member, int(n_clusters))) is not None]
    if not starts and n_init == 0:
        raise ValueError(f"no partition has {n_clusters} clusters to start from and n_init is 0; give n_init >= 1")
    candidates = [kmeans(memberships, int(n_clusters), init=start, seed=seed).labels for start in starts]
    if n_init:
        candidates.append(kmeans(memberships, int(n_clusters), n_init=int(n_init), seed=seed).labels)
    scored = [(_objective(labels.cpu().numpy(), codes), labels.cpu().numpy()) for labels in candidates]
    objective, labels = max(scored, key=lambda pair: pair[0])
    return ConsensusResult(labels=labels.astype(np.int64), objective=objective,
                           member_objectives=[_objective(member, codes) for member in codes])
