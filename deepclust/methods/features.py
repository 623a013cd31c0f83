"""What the shallow baselines cluster: fixed features of the images, and the estimator base they share.

:class:`FeatureEncoder` turns images into feature rows — the pixels, a randomly initialised
backbone, or the ``transform`` of a fitted estimator (a run folder or its ``model.pt``).
:class:`FeatureBaseline` is the estimator of the baselines that cluster such features without
training (``kmeans``, ``umap-gmm``): fit, predict, transform, score, save and load are written once
here, the clustering itself by each subclass. Feature vectors given as a 2-D (N, D) array
(:mod:`deepclust.methods.inputs`) are the rows themselves, clustered as given (``features="pixels"``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from torch import nn

from deepclust._version import __version__
from deepclust.augment import build_eval_transform
from deepclust.backbones import build_backbone, list_backbones
from deepclust.data import write_source
from deepclust.data.arrays import to_labels
from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_atomic
from deepclust.engine.inference import map_images
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.evaluation import evaluate_clustering
from deepclust.methods.base import check_n_clusters, prepare_out_dir, to_dataset, write_metrics
from deepclust.methods.inputs import (
    EstimatorConventions, as_tensor, feature_vectors, fitted_kind_of, is_feature_vectors, values_per_sample,
)

PIXELS = "pixels"


class FeatureEncoder:
    """Images (uint8 tensor N×C×H×W) → float32 feature rows (N×D), on the CPU.

    ``features``: ``"pixels"`` (the images scaled to [0, 1], resized to ``image_size`` if given,
    flattened); a backbone name (``small_cnn``, ``resnet18``, ...: that backbone randomly
    initialised with ``seed``, in evaluation mode, on resized images); or a path to a run folder
    or a ``model.pt`` of any fitted estimator, whose ``transform`` gives the rows. The encoder
    holds no closures, so it pickles.
    """

    def __init__(self, features: str, input_shape, *, image_size: int | None = None, seed: int = 0,
                 device: torch.device | str = "cpu", batch_size: int = 1024):
        if not isinstance(features, str) or not features:
            raise ValueError(f"features must be 'pixels', a backbone name or a run folder, got {features!r}")
        self.features = features
        self.input_shape = tuple(int(s) for s in input_shape)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        channels = self.input_shape[0]
        size = image_size or self.input_shape[-1]
        self.estimator = None
        self.network: nn.Module | None = None
        if features == PIXELS:
            self.network = nn.Sequential(build_eval_transform(size, channels), nn.Flatten(1))
        elif features in list_backbones():
            seed_everything(seed)
            backbone = build_backbone(features, in_channels=channels, image_size=size)
            backbone.check_input((channels, size, size))
            self.network = nn.Sequential(build_eval_transform(size, channels), backbone)
        else:
            self.estimator = self._load_run(Path(features))
        if self.network is not None:
            self.network.to(self.device).eval()

    def _load_run(self, path: Path):
        from deepclust.methods import load_estimator

        model_file = path / "model.pt" if path.is_dir() else path
        if not model_file.is_file():
            raise ValueError(f"features must be 'pixels', a backbone name ({', '.join(list_backbones())}) or a run "
                             f"folder / model.pt of a fitted estimator; got '{path}', which is neither "
                             f"(no file {model_file})")
        estimator = load_estimator(model_file, device=str(self.device))
        fitted_channels = tuple(estimator.input_shape_)[0]
        if fitted_channels != self.input_shape[0]:
            raise ValueError(f"the run {path} was fitted on {fitted_channels}-channel images, these images have "
                             f"shape {self.input_shape}")
        return estimator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.estimator is not None:
            return torch.from_numpy(np.ascontiguousarray(self.estimator.transform(images.numpy()))).float()
        return map_images(self.network, images, self.batch_size, self.device)


class FeatureBaseline(EstimatorConventions, ClusterMixin, TransformerMixin, BaseEstimator):
    """Base of the baselines that cluster :class:`FeatureEncoder` rows (or given feature vectors)
    without training.

    A subclass declares its parameters in ``__init__`` (every one of ``n_clusters``, ``features``,
    ``image_size``, ``device``, ``seed``, ``out_dir``, ``overwrite``, ``verbose``, ``data_root``
    among them; ``overwrite`` replaces a run already in ``out_dir``, which is refused otherwise) and
    implements :meth:`_fit_clusters`, :meth:`_predict_clusters`, :meth:`_score_rows`,
    :meth:`_fitted_state` and :meth:`_restore_fitted`; it may override :meth:`_embed` (what
    ``transform`` returns).
    """

    method_name: ClassVar[str] = ""
    fitted_attribute: ClassVar[str] = "labels_"
    #: Run by ``deepclust bench`` beside the methods (``--baselines``), not as a method.
    baseline: ClassVar[bool] = True

    def _keep_parameters(self, parameters: dict) -> None:
        """Store every ``__init__`` argument (``locals()`` of the subclass's ``__init__``) under its
        own name, where scikit-learn's ``get_params``/``set_params`` read it."""
        for name in self._get_param_names():
            setattr(self, name, parameters[name])

    # --- what a subclass provides -----------------------------------------------------------
    def _fit_clusters(self, features: torch.Tensor, n_clusters: int) -> np.ndarray:
        """Cluster the training rows, keep what prediction needs, return their labels."""
        raise NotImplementedError

    def _predict_clusters(self, features: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _score_rows(self, features: torch.Tensor) -> np.ndarray:
        """(N,) how well each row fits the fitted clustering, higher is better; ``score`` is their mean."""
        raise NotImplementedError

    def _fitted_state(self) -> dict:
        """The fitted attributes saved in ``model.pt`` (read back by :meth:`_restore_fitted`)."""
        raise NotImplementedError

    def _restore_fitted(self, state: dict) -> None:
        raise NotImplementedError

    def _embed(self, features: torch.Tensor) -> np.ndarray:
        """``transform``'s output for feature rows: the rows themselves unless a subclass maps them."""
        return features.numpy()

    def _extra_metrics(self) -> dict:
        return {}

    # --- shared -------------------------------------------------------------------------------
    def _make_encoder(self) -> FeatureEncoder:
        return FeatureEncoder(self.features, self.input_shape_, image_size=self.image_size, seed=self.seed,
                              device=self.device_)

    def _fitted_on_vectors(self) -> bool:
        return len(self.input_shape_) == 1

    def _features(self, X) -> torch.Tensor:
        if fitted_kind_of(self, X, vectors=self._fitted_on_vectors(), image_shape=self.input_shape_):
            return as_tensor(feature_vectors(self, X, reset=False).astype(np.float32, copy=False))
        dataset = to_dataset(X, None, self.data_root)
        if tuple(dataset.shape) != tuple(self.input_shape_):
            raise ValueError(f"{self.method_name} was fitted on images of shape {self.input_shape_}, "
                             f"got {dataset.shape}")
        return self.encoder_(as_tensor(dataset.images))

    def _training_features(self, X, y):
        """``(feature rows, labels or None, dataset or None)`` of ``fit``'s data; sets ``input_shape_``
        (``(D,)`` for feature vectors), ``n_features_in_`` and ``encoder_`` (None for feature vectors)."""
        if is_feature_vectors(X):
            if self.features != PIXELS:
                raise ValueError(f"features={self.features!r} encodes images; feature vectors (N, D) are clustered as "
                                 "given, with features='pixels'")
            vectors = feature_vectors(self, X, reset=True)
            self.input_shape_, self.encoder_ = (vectors.shape[1],), None
            labels = None if y is None else to_labels(y, len(vectors))[0]
            return as_tensor(vectors.astype(np.float32, copy=False)), labels, None
        dataset = to_dataset(X, y, self.data_root)
        self.input_shape_ = tuple(dataset.shape)
        self.n_features_in_ = values_per_sample(dataset.shape)
        self.encoder_ = self._make_encoder()
        return self.encoder_(as_tensor(dataset.images)), dataset.labels, dataset

    def fit(self, X, y=None):
        """Cluster the features of ``X`` (dataset name, ImageDataset, image arrays or feature vectors);
        ``y`` only for metrics."""
        started = time.perf_counter()
        self.device_ = resolve_device(self.device)
        features, labels, dataset = self._training_features(X, y)
        n_clusters = check_n_clusters(self.n_clusters, len(features), minimum=1)
        out_dir = prepare_out_dir(self.out_dir, overwrite=self.overwrite)
        self.labels_ = self._fit_clusters(features, n_clusters)
        self.metrics_ = {
            **evaluate_clustering(labels, self.labels_, n_clusters),
            "method": self.method_name, "features": self.features, "dataset": "array" if dataset is None else dataset.name,
            "n_samples": len(features), "seconds": round(time.perf_counter() - started, 2),
            "device": str(self.device_), **self._extra_metrics(),
        }
        if out_dir is not None:
            self.save(out_dir / "model.pt")
            write_metrics(out_dir, self.metrics_)
            if dataset is not None:
                write_source(out_dir, dataset)
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        return self._embed(self._features(X))

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        return self._predict_clusters(self._features(X))

    def score(self, X, y=None) -> float:
        """A label-free score of how well ``X`` fits the fitted clustering, higher is better (``y`` is
        ignored): the mean of the subclass's per-row score (``kmeans``: minus the squared distance to
        the nearest centre; ``umap-gmm``: the mixture's log-likelihood of the UMAP coordinates)."""
        self._check_fitted()
        return float(np.mean(self._score_rows(self._features(X))))

    def save(self, path: str | Path) -> None:
        """``torch.save`` of the parameters and fitted objects (read with ``weights_only=False``).

        The encoder is rebuilt from the parameters on load (the random backbone from ``seed``; a
        run given as ``features`` is read again from its path)."""
        self._check_fitted()
        save_atomic({"format": CHECKPOINT_FORMAT, "version": __version__, "method": self.method_name,
                     "kind": "estimator", "params": self.get_params(), "input_shape": list(self.input_shape_),
                     "n_features_in": self.n_features_in_, "labels": self.labels_, "metrics": self.metrics_,
                     **self._fitted_state()}, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "FeatureBaseline":
        state = load_checkpoint(path, method=cls.method_name)
        estimator = cls(**{**state["params"], "device": device})
        estimator.device_ = resolve_device(device)
        estimator.input_shape_ = tuple(state["input_shape"])
        estimator.n_features_in_ = state.get("n_features_in", values_per_sample(estimator.input_shape_))
        estimator.encoder_ = None if estimator._fitted_on_vectors() else estimator._make_encoder()
        estimator.labels_, estimator.metrics_ = state["labels"], state["metrics"]
        estimator._restore_fitted(state)
        return estimator
