"""Loss terms, one per file, each citing the paper equation it implements."""
from deepclust.losses.cluster_contrastive import ClusterContrastiveLoss, marginal_entropy_gap
from deepclust.losses.cosine_regression import cosine_regression
from deepclust.losses.ntxent import NTXentLoss

__all__ = ["ClusterContrastiveLoss", "NTXentLoss", "cosine_regression", "marginal_entropy_gap"]
