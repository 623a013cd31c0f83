"""The estimator base classes: scikit-learn conventions over the training engine."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if
from torch import nn

from deepclust._version import __version__
from deepclust.data import ImageDataset, from_arrays, load_dataset, write_source
from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_atomic
from deepclust.engine import distributed
from deepclust.backbones import MODULE, backbone_build, build_backbone, split_backbone_section
from deepclust.engine.config import (
    RUN_RECORD, ConfigError, deep_merge, dump_config, list_presets, preset_config, read_config_file,
    split_run_record, with_shared_sections,
)
from deepclust.engine.inference import map_images, predict_labels
from deepclust.engine.model import ClusteringModel
from deepclust.engine.resume import check_config_change
from deepclust.engine.run_folder import CHECKPOINT, claim_run_folder
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.engine.schema import validate_config, with_engine_defaults
from deepclust.engine.trainer import Trainer
from deepclust.evaluation import evaluate_clustering
from deepclust.methods.inputs import (
    EstimatorConventions, as_tensor, feature_vectors, fitted_kind_of, is_feature_vectors, values_per_sample,
    vector_dataset, vector_samples,
)
from deepclust.refine import RefinedModel, refinement_due, run_refinement, without_refine


def to_dataset(X: Any, y: Any = None, data_root: str | os.PathLike | None = None, split: str = "all",
               training_size: int | None = None) -> ImageDataset:
    """Accept a dataset name (loaded with ``split``, an image folder stored for ``training_size``
    px training: :func:`deepclust.data.load_dataset`), an :class:`ImageDataset` or arrays (N,C,H,W /
    N,H,W, uint8 or float)."""
    if isinstance(X, ImageDataset):
        dataset = X
        if y is not None:
            dataset = from_arrays(X.images, y, name=X.name)
        return dataset
    if isinstance(X, (str, os.PathLike)):
        return load_dataset(str(X), root=data_root, split=split, training_size=training_size)
    return from_arrays(X, y)


def configured_split(config: dict) -> str:
    """The split a configuration's ``data.split`` asks for when a dataset is named (``"all"``, train +
    test, when it names none). An explicit split — ``deepclust fit --split``, or a dataset loaded
    with ``load_dataset(name, split=...)`` — wins over it."""
    split = (config.get("data") or {}).get("split", "all")
    if not isinstance(split, str) or not split:
        raise ConfigError(f"data.split must be a split name such as train, test or all, got {split!r}")
    return split


def configured_image_size(config: dict) -> int | None:
    """The image side a configuration trains on (``augmentation.image_size``; None: the data's own), for
    which a named image-folder dataset is stored (``load_dataset(..., training_size=...)``)."""
    return (config.get("augmentation") or {}).get("image_size")


def check_n_clusters(n_clusters: Any, n_samples: int, minimum: int = 2) -> int:
    """``n_clusters`` as an int between ``minimum`` (2 for the deep methods, whose losses compare
    clusters; 1 for the shallow baselines) and ``n_samples``."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise ValueError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < minimum:
        raise ValueError(f"n_clusters must be at least {minimum}, got {n_clusters}")
    if n_clusters > n_samples:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of samples (n_samples={n_samples})")
    return int(n_clusters)


def write_metrics(out_dir: str | Path | None, metrics: dict) -> None:
    if out_dir is None:
        return
    path = Path(out_dir) / "metrics.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def prepare_out_dir(out_dir: str | Path | None, *, resume: bool | None = None, overwrite: bool = False) -> Path | None:
    """Claim the run folder (:func:`~deepclust.engine.run_folder.claim_run_folder`: a folder holding a
    run is refused unless ``resume`` or ``overwrite``; ``resume=None``: the estimator cannot resume),
    create it and check it is writable, before any training starts."""
    if out_dir is None:
        return None
    path = Path(out_dir)
    claim_run_folder(path, resume=resume, overwrite=overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as error:
        raise OSError(f"output folder {path} is not writable: {error.strerror or error}") from error
    return path


class DeepClusterer(EstimatorConventions, ClusterMixin, TransformerMixin, BaseEstimator):
    """Base of every deep clustering estimator (``fit``, ``predict``, ``fit_predict``, ``transform``,
    ``fit_transform``, ``score``; ``predict_proba`` when the labels come from a cluster head).

    ``X`` is images or feature vectors (:mod:`deepclust.methods.inputs`).

    Parameters
    ----------
    n_clusters : number of clusters K.
    preset : a preset name of the method (``deepclust methods`` lists them); None = the defaults.
    config : extra configuration, a nested dict or a YAML/TOML file path, merged over the preset.
    max_epochs, batch_size, lr, image_size : shortcuts for the matching config keys.
    backbone : a backbone name (``backbone.name``), or your own ``torch.nn.Module``, which must map
        float images (B, C, H, W) in [0, 1] after the method's transforms (resized to the
        configuration's ``augmentation.image_size``, normalised when ``augmentation.normalize`` is
        set) to features (B, D); D is its int ``feature_dim`` if it has one, else found by a trial
        forward pass (:class:`~deepclust.backbones.ModuleBackbone`). ``fit`` trains a copy (the
        module given is left as it is); the configuration names it ``module``, and ``save`` pickles
        the module into ``model.pt`` with the parameters, so loading needs its class importable.
    device : ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    seed : seeds initialisation, augmentation and batching; a run is reproducible for a seed.
    max_minutes : wall-clock training budget; training stops cleanly and still evaluates.
    out_dir : run folder for config, checkpoints, log and metrics (None = keep nothing on disk); a
        folder that already holds a run is refused unless ``resume`` or ``overwrite`` (docs/RUNS.md).
    resume : continue the run in ``out_dir`` from its last checkpoint, with the configuration of its
        ``config.yaml`` (the other parameters may change only the epochs, the time budget and logging).
    overwrite : replace the run in ``out_dir``: delete the files a run writes there first.
    data_root : folder of named datasets passed to ``fit("cifar10")``.
    """

    method_name: ClassVar[str] = ""
    fitted_attribute: ClassVar[str] = "model_"
    model_class: ClassVar[type[ClusteringModel]]

    def __init__(self, n_clusters: int = 10, *, preset: str | None = None, config: dict | str | None = None,
                 max_epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 backbone: str | nn.Module | None = None, image_size: int | None = None, device: str = "auto",
                 seed: int = 0, max_minutes: float | None = None, out_dir: str | None = None,
                 resume: bool = False, overwrite: bool = False, verbose: bool = False,
                 data_root: str | None = None):
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
        self.overwrite = overwrite
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

    def _user_config(self) -> dict:
        """The ``config`` parameter as a dict, without the record keys of a run's config.yaml given back."""
        if self.config is None:
            return {}
        extra = read_config_file(self.config) if isinstance(self.config, (str, os.PathLike)) else self.config
        record, extra = split_run_record(extra)
        if record.get("method", self.method_name) != self.method_name:
            raise ConfigError(f"the configuration given is a '{record['method']}' run's config.yaml, "
                              f"not one of '{self.method_name}'")
        return extra

    def resolved_config(self, run_config: dict | None = None) -> dict:
        """The preset (or ``run_config``, a resumed run's own configuration), the ``config`` parameter and
        the shortcut parameters merged, in that order, and type-checked (:mod:`deepclust.engine.schema`)."""
        # a run saved before a shared section gained a key resumes with that key's default
        base = with_shared_sections(run_config if run_config is not None else self.preset_config(self.preset))
        config = deep_merge(with_engine_defaults(base), self._user_config())
        shortcuts = {
            ("training", "epochs"): self.max_epochs, ("training", "batch_size"): self.batch_size,
            ("training", "max_minutes"): self.max_minutes,
            ("optimizer", "lr"): self.lr, ("backbone", "name"): MODULE if isinstance(self.backbone, nn.Module) else self.backbone,
            ("augmentation", "image_size"): self.image_size,
        }
        for (section, key), value in shortcuts.items():
            if value is not None:
                config = deep_merge(config, {section: {key: value}})
        validate_config(config, with_engine_defaults(with_shared_sections(self.preset_config(None))))
        return config

    def _run_record(self) -> tuple[dict, dict | None]:
        """When resuming: the record and the configuration of the run's own ``config.yaml`` (else {}, None)."""
        path = Path(self.out_dir) / "config.yaml" if self.resume and self.out_dir is not None else None
        if path is None or not path.is_file():
            return {}, None
        record, config = split_run_record(read_config_file(path))
        if record.get("method", self.method_name) != self.method_name:
            raise ConfigError(f"{path} is the configuration of a '{record['method']}' run; resume it with "
                              f"method '{record['method']}'")
        if self.preset is not None and "preset" in record and self.preset != record["preset"]:
            raise ConfigError(f"the run in {self.out_dir} was trained with preset {record['preset']!r}, not "
                              f"{self.preset!r}; resume it without a preset (its config.yaml holds the values)")
        return record, config

    def data_split(self) -> str:
        """The split :meth:`fit` loads a named dataset with: the configuration's ``data.split`` (that
        of the run's own config.yaml when resuming; :func:`configured_split`)."""
        return configured_split(self.resolved_config(self._run_record()[1]))

    def training_image_size(self) -> int | None:
        """The image side :meth:`fit` trains on, for which it stores a named image-folder dataset
        (:func:`configured_image_size`; that of the run's own config.yaml when resuming)."""
        return configured_image_size(self.resolved_config(self._run_record()[1]))

    def _backbone_for(self, config: dict, input_shape: tuple[int, ...]) -> dict:
        """``config``, or with the ``mlp`` backbone when the user named no backbone and the configured one
        cannot take images of ``input_shape`` (e.g. LeNet and 8x8 digits); says so in one line."""
        named = self.backbone is not None or "name" in (self._user_config().get("backbone") or {})
        if named or len(input_shape) != 3 or "backbone" not in config:  # ae-umap-gmm builds its own MLP
            return config
        name, options, _ = split_backbone_section(config["backbone"])
        size = int(config["augmentation"].get("image_size") or input_shape[-1])
        try:
            with torch.device("meta"):  # shapes only: no weights are allocated
                build_backbone(name, in_channels=input_shape[0], image_size=size, **options).check_input(
                    (input_shape[0], size, size))
        except ValueError as error:
            if distributed.is_main_process():
                print(f"backbone: {name} cannot take these {size}x{size} images ({error}); using mlp instead "
                      "(name one with backbone=... or --set backbone.name=...)", file=sys.stderr, flush=True)
            return deep_merge(config, {"backbone": {"name": "mlp"}})
        return config

    def _cpu_hint(self, preset: str | None, config: dict) -> str | None:
        """The CPU preset to suggest when ``config`` trains the network of a paper configuration (``preset``
        None, the defaults, or ``paper-*``) and the method ships a CPU preset that differs from it."""
        cpu_presets = [name for name in self.presets() if name.startswith("cpu-")]
        if not cpu_presets or not (preset is None or preset.startswith("paper")):
            return None
        paper = self.preset_config(preset)
        size = ("augmentation", "image_size")
        if (config.get("backbone") != paper.get("backbone") or config[size[0]].get(size[1]) != paper[size[0]].get(size[1])
                or self.preset_config(cpu_presets[0]) == paper):
            return None
        return f"--preset {cpu_presets[0]} (preset='{cpu_presets[0]}')"

    def _build_model(self, config: dict, n_clusters: int, input_shape, mean, std, *,
                     load_weights: bool = True) -> ClusteringModel:
        """The method's network; ``load_weights`` False when its parameters will come from a checkpoint
        or a saved estimator (``backbone.weights`` is then not read)."""
        module = self.backbone if isinstance(self.backbone, nn.Module) else None
        with backbone_build(module, load_weights=load_weights):
            return self.model_class(config, n_clusters, input_shape, mean=mean, std=std)

    def _training_dataset(self, X, y, config: dict) -> ImageDataset:
        """The training data of ``fit`` (images, or feature vectors as uint8 samples scaled by the
        fitted ``feature_range_``: :mod:`deepclust.methods.inputs`); sets ``n_features_in_``."""
        if not is_feature_vectors(X):
            dataset = to_dataset(X, y, self.data_root, split=configured_split(config),
                                 training_size=configured_image_size(config))
            self.n_features_in_, self.feature_range_ = values_per_sample(dataset.shape), None
            return dataset
        vectors = feature_vectors(self, X, reset=True)
        self.feature_range_ = (vectors.min(axis=0), vectors.max(axis=0))
        return vector_dataset(vectors, y, self.feature_range_)

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on ``X`` (dataset name, ImageDataset, image arrays or feature vectors:
        :mod:`deepclust.methods.inputs`); ``y`` is used only for evaluation.

        A dataset name is loaded with the configuration's ``data.split`` (:func:`configured_split`).
        ``backbone.weights`` is read when training starts afresh, not when it resumes from a checkpoint.

        Launched by ``torchrun``, every process calls ``fit`` on the same data: training is
        distributed (see :mod:`deepclust.engine.distributed`), each process ends with the same
        model and labels, and only rank 0 writes to ``out_dir``.
        """
        started = time.perf_counter()
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs out_dir, the run folder to resume")
        device = distributed.init_from_environment(resolve_device(self.device))
        writes = distributed.is_main_process()
        record, run_config = distributed.broadcast_object(self._run_record() if writes else None)  # rank 0's folder
        config = self.resolved_config(run_config)
        dataset = self._training_dataset(X, y, config)
        n_clusters = check_n_clusters(self.n_clusters, len(dataset))
        out_dir = prepare_out_dir(self.out_dir, resume=self.resume, overwrite=self.overwrite) if writes else \
            (Path(self.out_dir) if self.out_dir else None)
        config = self._backbone_for(config, tuple(dataset.shape))
        if run_config is not None:  # before config.yaml is rewritten; the trainer checks the checkpoint too
            check_config_change(without_refine(with_engine_defaults(run_config)), without_refine(config), source="run")
        preset = self.preset if self.preset is not None else record.get("preset")
        seed_everything(self.seed)
        resumes = self.resume and (Path(self.out_dir) / CHECKPOINT).is_file()  # its checkpoint holds the weights
        model = self._build_model(config, n_clusters, dataset.shape, dataset.mean, dataset.std, load_weights=not resumes)
        if out_dir is not None and writes:
            dump_config({RUN_RECORD: {"method": self.method_name, "preset": preset, "n_clusters": n_clusters,
                                       "seed": self.seed, "dataset": dataset.name}, **config}, out_dir / "config.yaml")
            write_source(out_dir, dataset)
        images = as_tensor(dataset.images)
        trainer = Trainer(
            model, images, without_refine(config), device=device, seed=self.seed, labels=dataset.labels, parts=dataset.parts,
            out_dir=out_dir,
            meta={"method": self.method_name, "n_clusters": n_clusters, "input_shape": list(dataset.shape)},
            max_minutes=self.max_minutes, resume=self.resume, verbose=self.verbose, cpu_hint=self._cpu_hint(preset, config),
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
        if refinement_due(config, result):
            run_refinement(self, dataset, images, out_dir)
        if out_dir is not None and writes:
            self.save(out_dir / "model.pt")
            write_metrics(out_dir, self.metrics_)
        return self

    def extra_metrics(self, labels: np.ndarray) -> dict:
        """Method-specific entries of ``metrics_`` (and metrics.json) for the final ``labels``; they
        may replace the common ones. Called at the end of ``fit`` with ``model_`` in place."""
        return {}

    # --- inference --------------------------------------------------------------------------
    def _images(self, X) -> torch.Tensor:
        """``X`` as the uint8 sample tensor the network takes, checked against the training data."""
        self._check_fitted()
        feature_range = getattr(self, "feature_range_", None)
        if fitted_kind_of(self, X, vectors=feature_range is not None, image_shape=self.input_shape_):
            return as_tensor(vector_samples(feature_vectors(self, X, reset=False), feature_range))
        dataset = to_dataset(X, None, self.data_root)
        if tuple(dataset.shape) != tuple(self.input_shape_):
            raise ValueError(f"the model was trained on {self.input_shape_[0]}-channel images of shape "
                             f"{tuple(self.input_shape_)}, got images of shape {tuple(dataset.shape)}; give data "
                             "of the training shape (e.g. --data-option image_size=...)")
        return as_tensor(dataset.images)

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

    def score(self, X, y=None) -> float:
        """A label-free score of how well ``X`` fits the fitted clustering, higher is better (``y`` is
        ignored): the mean over the images of :meth:`ClusteringModel.label_scores
        <deepclust.engine.model.ClusteringModel.label_scores>` — for labels from a cluster head the
        log-probability of the assigned cluster, for labels by k-means on the embeddings minus the
        squared distance to the assigned centroid, for ``ae-umap-gmm`` the mixture's log-likelihood
        of the UMAP coordinates. What ``GridSearchCV`` maximises when no ``scoring`` is given."""
        images = self._images(X)
        self.model_.eval()
        return float(map_images(self.model_.label_scores, images, self._batch_size(), self.device_).mean())

    def _has_cluster_head(self) -> bool:
        """Whether the labels come from a cluster head (``predict_proba``): the fitted network's
        ``label_source``, or before fitting the one the configuration gives (a refine stage ends
        with a head whatever the method)."""
        if hasattr(self, "model_"):
            return self.model_.label_source == "head"
        try:
            config = self.resolved_config()
        except (ValueError, OSError):  # an invalid configuration: fit reports it
            return self.model_class.label_source == "head"
        refines = bool((config.get("refine") or {}).get("enabled", False))
        return refines or self.model_class.label_source_for(config) == "head"

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
            "inference": self.model_.inference_state(), "refined": isinstance(self.model_, RefinedModel),
            "labels": self.labels_, "metrics": getattr(self, "metrics_", None),
            "n_features_in": self.n_features_in_, "feature_range": self.feature_range_,
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
        estimator.n_features_in_ = state.get("n_features_in", values_per_sample(estimator.input_shape_))
        estimator.feature_range_ = state.get("feature_range")
        estimator.device_ = resolve_device(device)
        model = estimator._build_model(state["config"], state["n_clusters"], estimator.input_shape_,
                                       state["mean"], state["std"], load_weights=False)
        if state.get("refined"):
            model = RefinedModel(model)
        model.load_state_dict(state["model"])
        model.load_inference_state(state.get("inference") or {})
        estimator.model_ = model.to(estimator.device_).eval()
        estimator.labels_ = state["labels"]
        estimator.metrics_ = state["metrics"]
        return estimator
