"""The k-means baseline: k-means on pixels, or on the features of a (randomly initialised) backbone."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin

from deepclust._version import __version__
from deepclust.augment import build_eval_transform
from deepclust.backbones import build_backbone
from deepclust.cluster import assign, kmeans
from deepclust.data import write_source
from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_atomic
from deepclust.engine.inference import map_images
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.evaluation import evaluate_clustering
from deepclust.methods.base import check_n_clusters, prepare_out_dir, to_dataset, write_metrics
from deepclust.methods.registry import register_method


@register_method("kmeans")
class KMeansBaseline(ClusterMixin, BaseEstimator):
    """k-means (torch, k-means++ init, ``n_init`` restarts) on pixels or on backbone features.

    ``features="pixels"`` flattens the images scaled to [0, 1]. Any backbone name (``small_cnn``,
    ``resnet18``, ...) embeds the images with that backbone, randomly initialised with ``seed``
    and in evaluation mode — the usual "random network" baseline.
    """

    def __init__(self, n_clusters: int = 10, *, features: str = "pixels", n_init: int = 10, max_iter: int = 300,
                 image_size: int | None = None, device: str = "auto", seed: int = 0, out_dir: str | None = None,
                 verbose: bool = False, data_root: str | None = None):
        self.n_clusters = n_clusters
        self.features = features
        self.n_init = n_init
        self.max_iter = max_iter
        self.image_size = image_size
        self.device = device
        self.seed = seed
        self.out_dir = out_dir
        self.verbose = verbose
        self.data_root = data_root

    def _encoder(self, input_shape):
        channels, height = input_shape[0], input_shape[1]
        size = self.image_size or height
        transform = build_eval_transform(size, channels)
        if self.features == "pixels":
            return lambda images: transform(images).flatten(1)
        seed_everything(self.seed)
        backbone = build_backbone(self.features, in_channels=channels, image_size=size)
        backbone.check_input((channels, size, size))
        backbone.to(self.device_).eval()
        return lambda images: backbone(transform(images))

    def _features(self, X) -> torch.Tensor:
        dataset = to_dataset(X, None, self.data_root)
        if tuple(dataset.shape) != tuple(self.input_shape_):
            raise ValueError(f"k-means was fitted on images of shape {self.input_shape_}, got {dataset.shape}")
        return map_images(self.encoder_, torch.from_numpy(dataset.images), 1024, self.device_)

    def fit(self, X, y=None):
        started = time.perf_counter()
        dataset = to_dataset(X, y, self.data_root)
        n_clusters = check_n_clusters(self.n_clusters, len(dataset))
        out_dir = prepare_out_dir(self.out_dir)
        self.device_ = resolve_device(self.device)
        self.input_shape_ = tuple(dataset.shape)
        self.encoder_ = self._encoder(self.input_shape_)
        features = map_images(self.encoder_, torch.from_numpy(dataset.images), 1024, self.device_)
        result = kmeans(features.to(self.device_), n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                        seed=self.seed)
        self.cluster_centers_ = result.centroids.cpu()
        self.inertia_ = float(result.inertia)
        self.labels_ = result.labels.cpu().numpy()
        self.metrics_ = {
            **evaluate_clustering(dataset.labels, self.labels_, n_clusters),
            "method": "kmeans", "features": self.features, "dataset": dataset.name,
            "n_samples": len(dataset), "seconds": round(time.perf_counter() - started, 2),
            "device": str(self.device_),
        }
        if out_dir is not None:
            self.save(out_dir / "model.pt")
            write_metrics(out_dir, self.metrics_)
            write_source(out_dir, dataset)
        return self

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("this KMeansBaseline is not fitted yet; call fit first")

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        return self._features(X).numpy()

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        return assign(self._features(X), self.cluster_centers_).numpy()

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        save_atomic({"format": CHECKPOINT_FORMAT, "version": __version__, "method": "kmeans",
                     "kind": "estimator", "params": self.get_params(), "input_shape": list(self.input_shape_),
                     "centers": self.cluster_centers_, "labels": self.labels_, "metrics": self.metrics_,
                     "inertia": self.inertia_}, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "KMeansBaseline":
        state = load_checkpoint(path, method="kmeans")
        estimator = cls(**{**state["params"], "device": device})
        estimator.device_ = resolve_device(device)
        estimator.input_shape_ = tuple(state["input_shape"])
        estimator.encoder_ = estimator._encoder(estimator.input_shape_)
        estimator.cluster_centers_ = state["centers"]
        estimator.labels_, estimator.metrics_ = state["labels"], state["metrics"]
        estimator.inertia_ = state["inertia"]
        return estimator
