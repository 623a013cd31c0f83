"""UMAP to a few dimensions, then a Gaussian mixture: the clustering step of N2D.

N2D (McConville, Santos-Rodriguez, Piechocki & Craddock, *N2D: (Not Too) Deep Clustering via
Clustering the Local Manifold of an Autoencoded Embedding*, ICPR 2020) clusters an autoencoder's
codes by learning their local manifold with UMAP (McInnes et al. 2018) and fitting a Gaussian
mixture with full covariances to it. :class:`UmapGmm` is that step on any (N, D) feature array —
pixels, a backbone's features or a model's embeddings. It is used by the ``umap-gmm`` baseline and
by ``ae-umap-gmm`` (N2D) to read labels; umap-learn comes with the optional extra ``baselines``.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

INSTALL_HINT = "pip install 'deepclust[baselines]'"


class MissingExtraError(ImportError, RuntimeError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def import_umap():
    """The ``umap`` module (umap-learn), or :class:`MissingExtraError` naming the extra to install."""
    try:
        import umap
    except ImportError as error:
        raise MissingExtraError(f"UMAP needs the umap-learn package, which is not installed: {INSTALL_HINT} "
                                f"(or pip install umap-learn)") from error
    return umap


#: The options of :class:`UmapGmm` and their defaults (N2D's Fashion-MNIST run: 10 dimensions,
#: 20 neighbours, min_dist 0, Euclidean metric, full covariances, one GMM initialisation).
OPTIONS = {"n_components": 10, "n_neighbors": 20, "min_dist": 0.0, "metric": "euclidean", "n_epochs": None,
           "covariance_type": "full", "n_init": 1, "gmm_max_iter": 100}
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"UMAP+GMM option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class UmapGmm:
    """Cluster rows of a feature array: UMAP to ``n_components`` dimensions, then a Gaussian mixture.

    ``n_components``, ``n_neighbors``, ``min_dist``, ``metric`` and ``n_epochs`` (None = umap-learn's
    choice by data size) are umap-learn's; ``covariance_type``, ``n_init`` and ``gmm_max_iter``
    (its ``max_iter``) scikit-learn's ``GaussianMixture``. ``seed`` is the ``random_state`` of both
    (umap-learn then runs single-threaded and is reproducible).

    After :meth:`fit_predict`: ``embedding_`` (the UMAP coordinates of the fitted rows),
    ``labels_``, ``umap_`` and ``gmm_`` (the fitted umap-learn and scikit-learn objects) and
    ``umap_seconds_``. :meth:`predict` places new rows with UMAP's ``transform`` (an approximation:
    rows seen in the fit land near, not exactly at, their fitted coordinates) and assigns them to
    the most probable mixture component. The object pickles (``torch.save`` in ``model.pt``).
    """

    def __init__(self, n_clusters: int, *, seed: int = 0, **options):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown UMAP+GMM option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
        settings = {**OPTIONS, **options}
        self.n_clusters = _positive_int("n_clusters", n_clusters)
        self.n_components = _positive_int("n_components", settings["n_components"])
        self.n_neighbors = _positive_int("n_neighbors", settings["n_neighbors"], 2)
        self.n_init = _positive_int("n_init", settings["n_init"])
        self.gmm_max_iter = _positive_int("gmm_max_iter", settings["gmm_max_iter"])
        self.n_epochs = None if settings["n_epochs"] is None else _positive_int("n_epochs", settings["n_epochs"])
        min_dist = settings["min_dist"]
        if isinstance(min_dist, bool) or not isinstance(min_dist, (int, float)) or min_dist < 0:
            raise ValueError(f"UMAP+GMM option min_dist must be a number >= 0, got {min_dist!r}")
        self.min_dist = float(min_dist)
        if settings["covariance_type"] not in COVARIANCE_TYPES:
            raise ValueError(f"UMAP+GMM option covariance_type must be one of {', '.join(COVARIANCE_TYPES)}, "
                             f"got {settings['covariance_type']!r}")
        self.covariance_type = settings["covariance_type"]
        if not isinstance(settings["metric"], str):
            raise ValueError(f"UMAP+GMM option metric must be a umap-learn metric name, got {settings['metric']!r}")
        self.metric = settings["metric"]
        self.seed = int(seed)

    def options(self) -> dict:
        """The options, as keyword arguments of the constructor."""
        return {name: getattr(self, name) for name in OPTIONS}

    def _check_rows(self, features) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or not np.isfinite(features).all():
            raise ValueError(f"UMAP+GMM expects a finite (N, D) array of features, got shape {features.shape}"
                             + ("" if features.ndim != 2 else " with non-finite values"))
        return features

    def fit_predict(self, features) -> np.ndarray:
        """Fit UMAP and the mixture on the rows of ``features`` (N, D); returns their labels."""
        from sklearn.mixture import GaussianMixture

        umap = import_umap()
        features = self._check_rows(features)
        if self.n_neighbors >= len(features) or self.n_clusters > len(features):
            raise ValueError(f"UMAP+GMM needs more rows than n_neighbors={self.n_neighbors} and at least "
                             f"n_clusters={self.n_clusters}, got {len(features)} rows (n_samples={len(features)})")
        started = time.perf_counter()
        self.n_features_in_ = features.shape[1]
        self.umap_ = umap.UMAP(n_components=self.n_components, n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                               metric=self.metric, n_epochs=self.n_epochs, random_state=self.seed)
        with warnings.catch_warnings():  # "n_jobs value 1 overridden to 1 by setting random_state": wanted
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            self.embedding_ = np.asarray(self.umap_.fit_transform(features), dtype=np.float32)
        self.umap_seconds_ = time.perf_counter() - started
        self.gmm_ = GaussianMixture(n_components=self.n_clusters, covariance_type=self.covariance_type,
                                    n_init=self.n_init, max_iter=self.gmm_max_iter, random_state=self.seed)
        self.labels_ = self.gmm_.fit_predict(self.embedding_).astype(np.int64)
        return self.labels_

    def _check_fitted(self) -> None:
        if not hasattr(self, "gmm_"):
            raise RuntimeError("this UMAP+GMM clustering is not fitted yet; call fit_predict first")

    def transform(self, features) -> np.ndarray:
        """UMAP coordinates of new rows (umap-learn's ``transform``)."""
        self._check_fitted()
        features = self._check_rows(features)
        if features.shape[1] != self.n_features_in_:
            raise ValueError(f"UMAP+GMM was fitted on {self.n_features_in_} features per row, got {features.shape[1]}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return np.asarray(self.umap_.transform(features), dtype=np.float32)

    def predict(self, features) -> np.ndarray:
        """Labels of new rows: UMAP's ``transform``, then the most probable mixture component."""
        coordinates = self.transform(features)
        return self.gmm_.predict(coordinates).astype(np.int64)

    def score_samples(self, features) -> np.ndarray:
        """Log-likelihood of each new row's UMAP coordinates under the fitted mixture (the GMM's
        ``score_samples``; their mean is ``GaussianMixture.score``)."""
        return self.gmm_.score_samples(self.transform(features))
