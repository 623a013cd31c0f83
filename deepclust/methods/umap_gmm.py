"""The UMAP + Gaussian-mixture baseline: N2D's clustering step without its autoencoder."""
from __future__ import annotations

import numpy as np
import torch

from deepclust.cluster.umap_gmm import OPTIONS, UmapGmm, import_umap
from deepclust.methods.features import FeatureBaseline
from deepclust.methods.registry import register_method


@register_method("umap-gmm")
class UmapGmmBaseline(FeatureBaseline):
    """UMAP to ``n_components`` dimensions, then a Gaussian mixture (umap-learn + scikit-learn).

    What a practitioner runs instead of deep clustering: N2D's recipe (McConville et al., ICPR
    2020) on pixels, without the autoencoder (``ae-umap-gmm`` is N2D with it). ``features`` as for
    ``kmeans``: ``"pixels"``, a randomly initialised backbone by name, or a run folder /
    ``model.pt`` (UMAP + GMM on that estimator's ``transform``). The UMAP and GMM options are
    :class:`~deepclust.cluster.umap_gmm.UmapGmm`'s; ``seed`` is their ``random_state``. Needs
    umap-learn: ``pip install 'deepclust[baselines]'``.

    ``transform`` returns UMAP coordinates (umap-learn's ``transform`` for new images);
    ``embedding_`` holds those of the fitted images. ``predict`` places new images with UMAP's
    ``transform`` and takes the most probable component; ``score(X)`` is the mean log-likelihood of
    those coordinates under the mixture (``GaussianMixture.score``); see docs/methods/umap-gmm.md.
    """

    def __init__(self, n_clusters: int = 10, *, features: str = "pixels", n_components: int = 10,
                 n_neighbors: int = 20, min_dist: float = 0.0, metric: str = "euclidean", n_epochs: int | None = None,
                 covariance_type: str = "full", n_init: int = 1, gmm_max_iter: int = 100,
                 image_size: int | None = None, device: str = "auto", seed: int = 0, out_dir: str | None = None,
                 overwrite: bool = False, verbose: bool = False, data_root: str | None = None):
        self._keep_parameters(locals())

    def fit(self, X, y=None):
        import_umap()  # before any feature extraction: a missing extra fails at once
        return super().fit(X, y)

    def _fit_clusters(self, features: torch.Tensor, n_clusters: int) -> np.ndarray:
        self.clustering_ = UmapGmm(n_clusters, seed=self.seed, **{name: getattr(self, name) for name in OPTIONS})
        labels = self.clustering_.fit_predict(features.numpy())
        self.embedding_ = self.clustering_.embedding_
        return labels

    def _predict_clusters(self, features: torch.Tensor) -> np.ndarray:
        return self.clustering_.predict(features.numpy())

    def _embed(self, features: torch.Tensor) -> np.ndarray:
        return self.clustering_.transform(features.numpy())

    def _score_rows(self, features: torch.Tensor) -> np.ndarray:
        return self.clustering_.score_samples(features.numpy())

    def _extra_metrics(self) -> dict:
        return {"umap_seconds": round(self.clustering_.umap_seconds_, 2)}

    def _fitted_state(self) -> dict:
        return {"clustering": self.clustering_}

    def _restore_fitted(self, state: dict) -> None:
        self.clustering_ = state["clustering"]
        self.embedding_ = self.clustering_.embedding_
