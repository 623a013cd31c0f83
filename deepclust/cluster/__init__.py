"""Clustering primitives shared by methods: torch k-means and Sinkhorn-Knopp."""

from .kmeans import KMeansResult, TorchKMeans, assign, kmeans
from .sinkhorn import sinkhorn_knopp

__all__ = ["KMeansResult", "kmeans", "assign", "TorchKMeans", "sinkhorn_knopp"]
