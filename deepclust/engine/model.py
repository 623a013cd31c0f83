"""The contract between a method's network and the training engine.

A method subclasses :class:`ClusteringModel`: it builds its networks and losses from the
configuration, computes its loss in :meth:`training_step`, and says how cluster labels are read
at inference (``label_source``). The engine (``deepclust.engine.trainer``) drives any such model
without knowing which method it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from deepclust.augment import build_augmentation, build_eval_transform
from deepclust.backbones import build_backbone
from deepclust.cluster import assign, kmeans
from deepclust.module_state import resize_empty_buffers


@dataclass
class Batch:
    """One training batch: un-augmented images as floats in [0, 1] on the device, and their indices.

    Under ``torch.distributed`` these are this process's share of the global batch; a method
    gathers what its loss needs with :func:`deepclust.engine.distributed.gather`. ``generator``
    is seeded by the step and identical on every process: draw from it the randomness that all
    processes must share (None outside the trainer: torch's global random stream).
    """

    images: torch.Tensor
    indices: torch.Tensor
    epoch: int
    step: int
    generator: torch.Generator | None = None


@dataclass
class TrainingContext:
    """What the engine offers a model's hooks: progress and ways to walk the whole dataset.

    ``iterate_dataset()`` yields (images, indices) batches in order on this process;
    ``map_dataset(fn)`` returns ``fn`` of every image in order (float32, on the device), computed
    in shares by all processes under ``torch.distributed`` and gathered on each.
    """

    device: torch.device
    n_samples: int
    steps_per_epoch: int
    total_steps: int
    max_epochs: int
    iterate_dataset: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    map_dataset: Callable[[Callable[[torch.Tensor], torch.Tensor]], torch.Tensor] | None = None
    seed: int = 0


class ClusteringModel(nn.Module):
    """Base class of every deep clustering method's network.

    Subclasses implement :meth:`training_step` and :meth:`embed`. Labels come from
    ``label_source``: ``"head"`` (the default) is the argmax of :meth:`cluster_probabilities`,
    which methods with a cluster head implement; methods that read labels by k-means on the
    embeddings set ``label_source = "kmeans"``.

    Buffers sized only once training starts (centroids, pseudo-labels, memory banks) are
    registered empty; :meth:`load_state_dict` gives them the saved size.
    """

    label_source: str = "head"

    def __init__(self, config: dict, n_clusters: int, input_shape: tuple[int, ...], mean=None, std=None):
        super().__init__()
        if n_clusters < 2:
            raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
        self.config = config
        self.n_clusters = int(n_clusters)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.image_size = int(config["augmentation"].get("image_size") or self.input_shape[-1])
        self.normalisation = {}
        if config["augmentation"].get("normalize", False) and mean is not None:
            self.normalisation = {"mean": tuple(mean), "std": tuple(std)}
        self.eval_transform = build_eval_transform(self.image_size, self.input_shape[0], **self.normalisation)
        self.register_buffer("centroids", torch.zeros(0))

    # --- building blocks from the configuration ----------------------------------------------
    def make_backbone(self) -> nn.Module:
        """The ``backbone`` section's network for this input (channels, image size).

        Raises ``ValueError`` when the backbone cannot take one sample of (C, image_size,
        image_size), or of (C, image_size) for a backbone of 1-D signals (``input_rank`` 2).
        """
        options = dict(self.config["backbone"])
        name = options.pop("name")
        channels = self.input_shape[0]
        backbone = build_backbone(name, in_channels=channels, image_size=self.image_size, **options)
        sample = (channels, self.image_size) if backbone.input_rank == 2 else \
            (channels, self.image_size, self.image_size)
        backbone.check_input(sample)
        return backbone

    def make_augmentation(self, **overrides) -> nn.Module:
        """The ``augmentation`` section's view pipeline; ``overrides`` change single options (e.g. per view).

        Section keys: ``name`` (a pipeline of ``deepclust.augment``), ``image_size`` (None = the
        data's size), ``normalize`` (dataset mean/std normalisation), and the pipeline's options.
        """
        options = {key: value for key, value in self.config["augmentation"].items()
                   if key not in ("name", "image_size", "normalize")}
        options.update(overrides)
        return build_augmentation(self.config["augmentation"]["name"], self.image_size, self.input_shape[0],
                                  **self.normalisation, **options)

    # --- training -------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return ``{"loss": total, <term>: value, ...}`` for one batch; the engine back-propagates ``loss``."""
        raise NotImplementedError

    def parameter_groups(self) -> list[dict]:
        """Optimizer parameter groups; a group may carry ``lr_scale`` (multiplies the base lr)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def on_fit_start(self, context: TrainingContext) -> None:
        """Called once before the first step of a fresh (not resumed) run."""

    def on_epoch_start(self, epoch: int, context: TrainingContext) -> None:
        """Called at the start of every epoch (not when resuming in the middle of one)."""

    def on_after_step(self, global_step: int, context: TrainingContext) -> None:
        """Called after every optimizer step (EMA updates, memory banks)."""

    # --- inference ------------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings of un-augmented images (floats in [0, 1]) used by ``transform`` and k-means labels."""
        raise NotImplementedError

    def cluster_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(B, K) soft assignments of un-augmented images; only for ``label_source == "head"``."""
        raise NotImplementedError(f"{type(self).__name__} has no cluster head")

    def fit_inference(self, embeddings: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Prepare label prediction from the embeddings of the whole training set.

        For k-means methods: cluster the embeddings and keep the centroids; returns the labels.
        """
        metric = self.config.get("inference", {}).get("kmeans_metric", "cosine")
        result = kmeans(embeddings, self.n_clusters, metric=metric, seed=seed,
                        n_init=self.config.get("inference", {}).get("kmeans_restarts", 3))
        self.centroids = result.centroids.to(self.centroids.device)
        return result.labels

    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        if self.label_source == "head":
            return self.cluster_probabilities(images).argmax(dim=1)
        if self.centroids.numel() == 0:
            raise RuntimeError("k-means centroids are not fitted yet; call fit_inference first")
        metric = self.config.get("inference", {}).get("kmeans_metric", "cosine")
        return assign(self.embed(images).float(), self.centroids, metric=metric)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        resize_empty_buffers(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
