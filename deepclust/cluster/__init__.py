"""Clustering and assignment primitives shared by methods: torch k-means (hard and soft
assignments), Sinkhorn-Knopp, random projections, DCHL's in-batch seeded k-means, HardReg's Gaussian
cost with its hard-regularised assignment, the consensus of several partitions, and cosine nearest
neighbours."""

from .batch_kmeans import BatchGroups, seeded_batch_kmeans
from .consensus import ConsensusResult, consensus, consensus_objective
from .hard_assignment import gaussian_cost, hard_regularised_assignment
from .kmeans import KMeansResult, TorchKMeans, assign, kmeans, nearest, soft_assign
from .neighbours import nearest_neighbours
from .random_projection import RandomProjections
from .sinkhorn import sinkhorn_knopp

__all__ = ["BatchGroups", "ConsensusResult", "KMeansResult", "RandomProjections", "TorchKMeans", "assign",
           "consensus", "consensus_objective", "gaussian_cost", "hard_regularised_assignment", "kmeans", "nearest",
           "nearest_neighbours", "seeded_batch_kmeans", "sinkhorn_knopp", "soft_assign"]
