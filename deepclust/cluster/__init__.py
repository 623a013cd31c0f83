"""Clustering and assignment primitives shared by methods: torch k-means (hard and soft
assignments), Sinkhorn-Knopp, random projections, DCHL's in-batch seeded k-means, HardReg's Gaussian
cost with its hard-regularised assignment, and the consensus of several partitions."""

from .batch_kmeans import BatchGroups, seeded_batch_kmeans
from .consensus import ConsensusResult, consensus, consensus_objective
from .hard_assignment import gaussian_cost, hard_regularised_assignment
from .kmeans import KMeansResult, TorchKMeans, assign, kmeans, nearest, soft_assign
from .random_projection import RandomProjections
from .sinkhorn import sinkhorn_knopp

__all__ = ["BatchGroups", "ConsensusResult", "KMeansResult", "RandomProjections", "TorchKMeans", "assign",
           "consensus", "consensus_objective", "gaussian_cost", "hard_regularised_assignment", "kmeans", "nearest",
           "seeded_batch_kmeans", "sinkhorn_knopp", "soft_assign"]
