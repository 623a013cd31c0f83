"""The k-means baseline: k-means on pixels, on the features of a (randomly initialised) backbone, or
on the embeddings of a fitted run."""
from __future__ import annotations

import numpy as np
import torch

from deepclust.cluster import assign, kmeans, nearest
from deepclust.methods.features import FeatureBaseline
from deepclust.methods.registry import register_method


@register_method("kmeans")
class KMeansBaseline(FeatureBaseline):
    """k-means (torch, k-means++ init, ``n_init`` restarts) on pixels or on backbone features.

    ``features="pixels"`` flattens the images scaled to [0, 1]. Any backbone name (``small_cnn``,
    ``resnet18``, ...) embeds the images with that backbone, randomly initialised with ``seed``
    and in evaluation mode — the usual "random network" baseline. A run folder or ``model.pt``
    clusters that fitted estimator's ``transform`` (see :class:`~deepclust.methods.features.FeatureEncoder`).
    Feature vectors (a 2-D (N, D) array) are clustered as given.

    ``score(X)`` is minus the mean squared Euclidean distance of X's feature rows to their nearest
    centre: the k-means objective per row (scikit-learn's ``KMeans.score`` is minus its sum).
    """

    def __init__(self, n_clusters: int = 10, *, features: str = "pixels", n_init: int = 10, max_iter: int = 300,
                 image_size: int | None = None, device: str = "auto", seed: int = 0, out_dir: str | None = None,
                 overwrite: bool = False, verbose: bool = False, data_root: str | None = None):
        self._keep_parameters(locals())

    def _fit_clusters(self, features: torch.Tensor, n_clusters: int) -> np.ndarray:
        result = kmeans(features.to(self.device_), n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                        seed=self.seed)
        self.cluster_centers_ = result.centroids.cpu()
        self.inertia_ = float(result.inertia)
        self.n_iter_ = int(result.n_iter)
        return result.labels.cpu().numpy()

    def _predict_clusters(self, features: torch.Tensor) -> np.ndarray:
        return assign(features, self.cluster_centers_).numpy()

    def _score_rows(self, features: torch.Tensor) -> np.ndarray:
        return -nearest(features, self.cluster_centers_)[1].numpy()

    def _fitted_state(self) -> dict:
        return {"centers": self.cluster_centers_, "inertia": self.inertia_, "n_iter": self.n_iter_}

    def _restore_fitted(self, state: dict) -> None:
        self.cluster_centers_, self.inertia_ = state["centers"], state["inertia"]
        self.n_iter_ = state.get("n_iter")
