"""The estimator base classes: scikit-learn conventions over the training engine."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.metaestimators import available_if

from deepclust._version import __version__
from deepclust.data import ImageDataset, from_arrays, load_dataset, write_source
from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_atomic
from deepclust.engine import distributed
from deepclust.engine.config import deep_merge, dump_config, list_presets, preset_config, read_config_file
from deepclust.engine.inference import map_images, predict_labels
from deepclust.engine.model import ClusteringModel
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.engine.trainer import Trainer
from deepclust.evaluation import evaluate_clustering


def to_dataset(X: Any, y: Any = None, data_root: str | os.PathLike | None = None) -> ImageDataset:
    """Accept a dataset name, an :class:`ImageDataset` or arrays (N,C,H,W / N,H,W, uint8 or float)."""
    if isinstance(X, ImageDataset):
        dataset = X
        if y is not None:
            dataset = from_arrays(X.images, y, name=X.name)
        return dataset
    if isinstance(X, (str, os.PathLike)):
        return load_dataset(str(X), root=data_root)
    return from_arrays(X, y)


def check_n_clusters(n_clusters: Any, n_samples: int) -> int:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise ValueError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if n_clusters > n_samples:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of samples ({n_samples})")
    return int(n_clusters)


def write_metrics(out_dir: str | Path | None, metrics: dict) -> None:
    if out_dir is None:
        return
    path = Path(out_dir) / "metrics.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def prepare_out_dir(out_dir: str | Path | None) -> Path | None:
    """Create the run folder and check it is writable before any training starts."""
    if out_dir is None:
        return None
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as error:
        raise OSError(f"output folder {path} is not writable: {error.strerror or error}") from error
    return path


class DeepClusterer(ClusterMixin, BaseEstimator):
    """Base of every deep clustering estimator (``fit``, ``predict``, ``fit_predict``, ``transform``).

    Parameters
    ----------
    n_clusters : number of clusters K.
    preset : a preset name of the method (``deepclust methods`` lists them); None = the defaults.
    config : extra configuration, a nested dict or a YAML/TOML file path, merged over the preset.
    max_epochs, batch_size, lr, backbone, image_size : shortcuts for the matching config keys.
    device : ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    seed : seeds initialisation, augmentation and batching; a run is reproducible for a seed.
    max_minutes : wall-clock training budget; training stops cleanly and still evaluates.
    out_dir : run folder for config, checkpoints, log and metrics (None = keep nothing on disk).
    resume : continue from ``out_dir/checkpoints/last.pt`` when it exists.
    data_root : folder of named datasets passed to ``fit("cifar10")``.
    """

    method_name: ClassVar[str] = ""
    model_class: ClassVar[type[ClusteringModel]]

    def __init__(self, n_clusters: int = 10, *, preset: str | None = None, config: dict | str | None = None,
                 max_epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 backbone: str | None = None, image_size: int | None = None, device: str = "auto",
                 seed: int = 0, max_minutes: float | None = None, out_dir: str | None = None,
                 resume: bool = False, verbose: bool = False, data_root: str | None = None):
        self.n_clusters = n_clusters
        self.preset = preset
        self.config = config
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.backbone = backbone
        self.image_size = image_size
        self.device = device
        self.seed = seed
        self.max_minutes = max_minutes
        self.out_dir = out_dir
        self.resume = resume
        self.verbose = verbose
        self.data_root = data_root

    # --- configuration ----------------------------------------------------------------------
    @classmethod
    def preset_config(cls, preset: str | None) -> dict:
        """The method's full configuration with ``preset`` applied (from ``presets/<method>.yaml``)."""
        return preset_config(cls.method_name, preset)

    @classmethod
    def presets(cls) -> list[str]:
        """Names of the method's shipped presets."""
        return list_presets(cls.method_name)

    def resolved_config(self) -> dict:
        """The preset, the ``config`` parameter and the shortcut parameters merged, in that order."""
        config = self.preset_config(self.preset)
        if self.config is not None:
            extra = read_config_file(self.config) if isinstance(self.config, (str, os.PathLike)) else self.config
            config = deep_merge(config, extra)
        shortcuts = {
            ("training", "epochs"): self.max_epochs, ("training", "batch_size"): self.batch_size,
            ("optimizer", "lr"): self.lr, ("backbone", "name"): self.backbone,
            ("augmentation", "image_size"): self.image_size,
        }
        for (section, key), value in shortcuts.items():
            if value is not None:
                config = deep_merge(config, {section: {key: value}})
        return config

    def _build_model(self, config: dict, n_clusters: int, input_shape, mean, std) -> ClusteringModel:
        return self.model_class(config, n_clusters, input_shape, mean=mean, std=std)

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on ``X`` (dataset name, ImageDataset or arrays); ``y`` is used only for evaluation.

        Launched by ``torchrun``, every process calls ``fit`` on the same data: training is
        distributed (see :mod:`deepclust.engine.distributed`), each process ends with the same
        model and labels, and only rank 0 writes to ``out_dir``.
        """
        started = time.perf_counter()
        dataset = to_dataset(X, y, self.data_root)
        n_clusters = check_n_clusters(self.n_clusters, len(dataset))
        config = self.resolved_config()
        device = distributed.init_from_environment(resolve_device(self.device))
        writes = distributed.is_main_process()
        out_dir = prepare_out_dir(self.out_dir) if writes else (Path(self.out_dir) if self.out_dir else None)
        seed_everything(self.seed)
        model = self._build_model(config, n_clusters, dataset.shape, dataset.mean, dataset.std)
        if out_dir is not None and writes:
            dump_config({"method": self.method_name, "n_clusters": n_clusters, "seed": self.seed,
                         "dataset": dataset.name, **config}, out_dir / "config.yaml")
            write_source(out_dir, dataset)
        images = torch.from_numpy(dataset.images)
        trainer = Trainer(
            model, images, config, device=device, seed=self.seed, labels=dataset.labels, out_dir=out_dir,
            meta={"method": self.method_name, "n_clusters": n_clusters, "input_shape": list(dataset.shape)},
            max_minutes=self.max_minutes, resume=self.resume, verbose=self.verbose,
        )
        result = trainer.fit()
        self.model_ = model
        self.config_ = config
        self.input_shape_ = tuple(dataset.shape)
        self.mean_, self.std_ = dataset.mean, dataset.std
        self.device_ = device
        self.fit_result_ = result
        self.history_ = result.history
        self.labels_ = result.labels
        self.metrics_ = {
            **evaluate_clustering(dataset.labels, self.labels_, n_clusters),
            "method": self.method_name, "dataset": dataset.name, "n_samples": len(dataset),
            "epochs": result.epochs_completed, "steps": result.global_step,
            "train_seconds": round(result.train_seconds, 2),
            "seconds": round(time.perf_counter() - started, 2),
            "images_per_second": round(result.images_per_second, 1),
            "stop_reason": result.stop_reason, "device": str(device),
        }
        self.metrics_.update(self.extra_metrics(self.labels_))
        if out_dir is not None and writes:
            self.save(out_dir / "model.pt")
            write_metrics(out_dir, self.metrics_)
        return self

    def extra_metrics(self, labels: np.ndarray) -> dict:
        """Method-specific entries of ``metrics_`` (and metrics.json) for the final ``labels``; they
        may replace the common ones. Called at the end of ``fit`` with ``model_`` in place."""
        return {}

    # --- inference --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _images(self, X) -> torch.Tensor:
        self._check_fitted()
        dataset = to_dataset(X, None, self.data_root)
        if dataset.shape[0] != self.input_shape_[0]:
            raise ValueError(f"the model was trained on {self.input_shape_[0]}-channel images, "
                             f"got images of shape {dataset.shape}")
        return torch.from_numpy(dataset.images)

    def _batch_size(self) -> int:
        return int(self.config_["training"].get("eval_batch_size", 512))

    def predict(self, X) -> np.ndarray:
        """Cluster labels of new images with the trained model (no re-clustering)."""
        images = self._images(X)
        return predict_labels(self.model_, images, self._batch_size(), self.device_)

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).labels_

    def transform(self, X) -> np.ndarray:
        """Embeddings of the images (the representation the method clusters)."""
        images = self._images(X)
        self.model_.eval()
        return map_images(self.model_.embed, images, self._batch_size(), self.device_).numpy()

    def _has_cluster_head(self) -> bool:
        return self.model_class.label_source == "head"

    @available_if(_has_cluster_head)
    def predict_proba(self, X) -> np.ndarray:
        """Soft cluster assignments (N×K) from the method's cluster head."""
        images = self._images(X)
        self.model_.eval()
        return map_images(self.model_.cluster_probabilities, images, self._batch_size(), self.device_).numpy()

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the fitted estimator atomically (parameters, configuration and weights)."""
        self._check_fitted()
        save_atomic({
            "format": CHECKPOINT_FORMAT, "version": __version__, "method": self.method_name,
            "kind": "estimator", "params": self.get_params(), "config": self.config_,
            "n_clusters": self.model_.n_clusters, "input_shape": list(self.input_shape_),
            "mean": self.mean_, "std": self.std_, "model": self.model_.state_dict(),
            "labels": self.labels_, "metrics": getattr(self, "metrics_", None),
        }, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "DeepClusterer":
        """Load an estimator written by :meth:`save`."""
        state = load_checkpoint(path, method=cls.method_name)
        if state.get("kind") != "estimator":
            raise ValueError(f"{path} is a training checkpoint, not a saved estimator (use model.pt of a run)")
        estimator = cls(**{**state["params"], "device": device})
        estimator.config_ = state["config"]
        estimator.input_shape_ = tuple(state["input_shape"])
        estimator.mean_, estimator.std_ = state["mean"], state["std"]
        estimator.device_ = resolve_device(device)
        model = estimator._build_model(state["config"], state["n_clusters"], estimator.input_shape_,
                                       state["mean"], state["std"])
        model.load_state_dict(state["model"])
        estimator.model_ = model.to(estimator.device_).eval()
        estimator.labels_ = state["labels"]
        estimator.metrics_ = state["metrics"]
        return estimator
