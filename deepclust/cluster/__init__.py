"""Clustering and assignment primitives shared by methods: torch k-means, Sinkhorn-Knopp, random
projections, DCHL's in-batch seeded k-means and HardReg's Gaussian cost with its hard-regularised
assignment."""

from .batch_kmeans import BatchGroups, seeded_batch_kmeans
from .hard_assignment import gaussian_cost, hard_regularised_assignment
from .kmeans import KMeansResult, TorchKMeans, assign, kmeans
from .random_projection import RandomProjections
from .sinkhorn import sinkhorn_knopp

__all__ = ["BatchGroups", "KMeansResult", "RandomProjections", "TorchKMeans", "assign", "gaussian_cost",
           "hard_regularised_assignment", "kmeans", "seeded_batch_kmeans", "sinkhorn_knopp"]
