"""The contract between a method's network and the training engine.

A method subclasses :class:`ClusteringModel`: it builds its networks and losses from the
configuration, computes its loss in :meth:`training_step`, and says how cluster labels are read
at inference (``label_source``). The engine (``deepclust.engine.trainer``) drives any such model
without knowing which method it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from deepclust.augment import ViewPipeline, build_augmentation, build_eval_transform
from deepclust.backbones import build_backbone, prepare_backbone, split_backbone_section
from deepclust.cluster import kmeans, nearest
from deepclust.engine.schema import section_errors
from deepclust.module_state import resize_empty_buffers


@dataclass
class Batch:
    """One training batch: un-augmented images as floats in [0, 1] on the device, and their indices.

    Under ``torch.distributed`` these are this process's share of the global batch; a method
    gathers what its loss needs with :func:`deepclust.engine.distributed.gather`. ``generator``
    is seeded by the step and identical on every process: draw from it the randomness that all
    processes must share (None outside the trainer: torch's global random stream).
    ``pass_name`` and ``terms`` are those of the :class:`EpochPass` the batch belongs to:
    ``terms`` None means every loss term of the method, a tuple only those. ``fetch(indices)``
    gives other images of the dataset, by index, as ``images`` holds them (None outside the trainer).
    """

    images: torch.Tensor
    indices: torch.Tensor
    epoch: int
    step: int
    generator: torch.Generator | None = None
    pass_name: str = "all"
    terms: tuple[str, ...] | None = None
    fetch: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class EpochPass:
    """One pass of an epoch: a walk in random batches over some of the dataset's images, training
    only some of the method's loss terms.

    name:    what the log and the batches call the pass.
    indices: the dataset indices it covers (1-D integers); None = every image.
    terms:   the loss terms it trains (the method's names, e.g. ``("instance",)``); None = all.
    """

    name: str
    indices: np.ndarray | None = None
    terms: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.indices is not None:
            indices = np.asarray(self.indices)
            if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
                raise ValueError(f"epoch pass {self.name!r}: indices must be a 1-D integer array, "
                                 f"got {indices.dtype} of shape {indices.shape}")
            object.__setattr__(self, "indices", indices.astype(np.int64, copy=False))
        if self.terms is not None:
            object.__setattr__(self, "terms", tuple(str(term) for term in self.terms))

    def size(self, n_samples: int) -> int:
        """How many images the pass covers in a dataset of ``n_samples``."""
        return n_samples if self.indices is None else len(self.indices)


@dataclass
class TrainingContext:
    """What the engine offers a model's hooks: progress and ways to walk the whole dataset.

    ``iterate_dataset()`` yields (images, indices) batches in order on this process;
    ``map_dataset(fn)`` returns ``fn`` of every image in order (float32, on the device), computed
    in shares by all processes under ``torch.distributed`` and gathered on each. ``parts`` are
    the dataset's named index arrays (:attr:`deepclust.data.ImageDataset.parts`, e.g. STL-10's
    "train", "test", "unlabeled"); ``steps_per_epoch`` counts the steps of all the epoch's passes.
    """

    device: torch.device
    n_samples: int
    steps_per_epoch: int
    total_steps: int
    max_epochs: int
    iterate_dataset: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    map_dataset: Callable[[Callable[[torch.Tensor], torch.Tensor]], torch.Tensor] | None = None
    seed: int = 0
    parts: Mapping[str, np.ndarray] = field(default_factory=dict)


class ClusteringModel(nn.Module):
    """Base class of every deep clustering method's network.

    Subclasses implement :meth:`training_step` and :meth:`embed`. Labels come from
    ``label_source``: ``"head"`` (the default) is the argmax of :meth:`cluster_probabilities`,
    which methods with a cluster head implement; methods that read labels by k-means on the
    embeddings set ``label_source = "kmeans"``. Another clustering of the embeddings (e.g.
    ``"umap-gmm"``) overrides :meth:`fit_inference` and :meth:`predict_labels`, and keeps what is
    not a tensor in :meth:`inference_state`.

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
        if self.input_shape[1:] == (1, 1):  # feature vectors stored as (D, 1, 1) samples: nothing to resize
            if self.image_size != 1:
                raise ValueError(f"the samples are feature vectors of {self.input_shape[0]} values, stored as "
                                 f"{self.input_shape}; they cannot be resized to augmentation.image_size="
                                 f"{self.image_size} (set it to null)")
            self.eval_transform = ViewPipeline("eval", 1, self.input_shape[0], [], **self.normalisation)
        else:
            self.eval_transform = build_eval_transform(self.image_size, self.input_shape[0], **self.normalisation)
        self.register_buffer("centroids", torch.zeros(0))

    # --- building blocks from the configuration ----------------------------------------------
    def make_backbone(self) -> nn.Module:
        """The ``backbone`` section's network for this input (channels, image size), with its
        settings applied (:mod:`deepclust.backbones.weights`: ``weights`` loaded on a fresh build,
        ``freeze``).

        Raises ``ValueError`` when the backbone cannot take one sample of (C, image_size,
        image_size), or of (C, image_size) for a backbone of 1-D signals (``input_rank`` 2).
        """
        name, options, settings = split_backbone_section(self.config["backbone"])
        channels = self.input_shape[0]
        with section_errors("backbone"):
            backbone = build_backbone(name, in_channels=channels, image_size=self.image_size, **options)
            sample = (channels, self.image_size) if backbone.input_rank == 2 else \
                (channels, self.image_size, self.image_size)
            backbone.check_input(sample)
            prepare_backbone(backbone, **settings)
        return backbone

    def make_augmentation(self, **overrides) -> nn.Module:
        """The ``augmentation`` section's view pipeline; ``overrides`` change single options (e.g. per view).

        Section keys: ``name`` (a pipeline of ``deepclust.augment``), ``image_size`` (None = the
        data's size), ``normalize`` (dataset mean/std normalisation), and the pipeline's options.
        """
        options = {key: value for key, value in self.config["augmentation"].items()
                   if key not in ("name", "image_size", "normalize")}
        options.update(overrides)
        with section_errors("augmentation"):
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

    def on_before_step(self, global_step: int, context: TrainingContext) -> None:
        """Called after the backward pass, just before the optimizer step: the parameters are still
        those this step's loss was computed with (an EMA target that moves before the update)."""

    def on_after_step(self, global_step: int, context: TrainingContext) -> None:
        """Called after every optimizer step (EMA updates, memory banks)."""

    def epoch_passes(self, n_samples: int, parts: Mapping[str, np.ndarray]) -> list[EpochPass]:
        """The passes of every epoch, in order, for a dataset of ``n_samples`` images with the named
        index arrays ``parts`` (:attr:`deepclust.data.ImageDataset.parts`). Called once when the
        trainer is built. The default: one pass over every image with every loss term."""
        return [EpochPass("all")]

    def epoch_order(self, n_samples: int, generator: torch.Generator) -> torch.Tensor:
        """The dataset indices of one epoch in training order, drawn from ``generator`` (seeded by the
        run's seed and the epoch): a random permutation. A method may draw them otherwise (e.g.
        resampled by its pseudo-labels); the engine cuts the result into batches."""
        return torch.randperm(n_samples, generator=generator)

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
        return self._nearest_centroid(images)[0]

    def _nearest_centroid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.centroids.numel() == 0:
            raise RuntimeError("k-means centroids are not fitted yet; call fit_inference first")
        metric = self.config.get("inference", {}).get("kmeans_metric", "cosine")
        return nearest(self.embed(images).float(), self.centroids, metric=metric)

    def label_scores(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) how well each image fits the label :meth:`predict_labels` gives it (higher is better);
        their mean is the estimator's ``score``. ``label_source`` "head": log p(label | x), the log of
        the assigned cluster's probability; "kmeans": minus the squared distance of the embedding to
        its centroid (``inference.kmeans_metric`` cosine: 2(1 − cos), on unit vectors), the
        image's share of the k-means objective. Another clustering of the embeddings overrides it."""
        if self.label_source == "head":
            return self.cluster_probabilities(images).float().max(dim=1).values.clamp_min(1e-12).log()
        return -self._nearest_centroid(images)[1]

    @classmethod
    def label_source_for(cls, config: dict) -> str:
        """The ``label_source`` a network of this class built from ``config`` has (a method whose
        configuration chooses it, e.g. ConCURL's ``inference.labels``, overrides this)."""
        return cls.label_source

    def inference_state(self) -> dict:
        """What label prediction needs besides parameters and buffers (e.g. a fitted UMAP), pickled
        into the saved estimator (``model.pt``) but not into training checkpoints."""
        return {}

    def load_inference_state(self, state: dict) -> None:
        """Restore what :meth:`inference_state` returned."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        resize_empty_buffers(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
