"""The network of the refine stage: a fitted method's feature network and a new cosine head."""
from __future__ import annotations

import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from deepclust.augment import build_augmentation
from deepclust.cluster import soft_assign
from deepclust.engine.config import ConfigError, with_shared_sections
from deepclust.engine.distributed import gather
from deepclust.engine.model import Batch, ClusteringModel, TrainingContext
from deepclust.losses import NeighbourConsistencyLoss
from deepclust.losses.cluster_contrastive import marginal_entropy_gap
from deepclust.module_state import evaluation_mode
from deepclust.refine.neighbours import check_neighbours, mine_neighbours
from deepclust.refine.selection import Selection, balanced_selection, check_selection, class_means

#: ``refine.objective``: SCAN's self-labelling (Sec. 3.2) or its clustering step on mined neighbours (Sec. 3.1).
OBJECTIVES = ("self_label", "neighbours")

#: The strong views' options where ``refine.augmentation`` leaves them null, by the images' channels
#: (grey: the crops and jitter that keep 28 px Fashion-MNIST items recognisable; colour: SimCLR's
#: full-strength jitter).
STRONG_VIEW_DEFAULTS = {1: {"strength": 0.5, "crop_scale": (0.4, 1.0)},
                        3: {"strength": 1.0, "crop_scale": (0.2, 1.0)}}


def strong_augmentation(options: dict, image_size: int, channels: int) -> nn.Module:
    """The ``refine.augmentation`` pipeline, without normalisation (the method's ``embed`` normalises).

    Null options take the pipeline's default, except ``strength`` (simclr) and ``crop_scale``,
    which take :data:`STRONG_VIEW_DEFAULTS` for the images' channels.
    """
    name = options["name"]
    chosen = {key: value for key, value in options.items() if key != "name" and value is not None}
    defaults = STRONG_VIEW_DEFAULTS.get(channels, STRONG_VIEW_DEFAULTS[3])
    if name == "simclr":
        chosen.setdefault("strength", defaults["strength"])
    if name != "none":
        chosen.setdefault("crop_scale", defaults["crop_scale"])
    try:
        return build_augmentation(name, image_size, channels, **chosen)
    except ValueError as error:
        raise ConfigError(f"refine.augmentation: {error}") from None


def parameters_used_by(module: nn.Module, function: Callable[[torch.Tensor], torch.Tensor],
                       sample: torch.Tensor) -> list[nn.Parameter]:
    """The parameters of ``module`` that ``function(sample)`` depends on, found by one backward pass
    (in eval mode, every parameter briefly taking gradients; flags and gradients are restored)."""
    parameters = list(module.parameters())
    saved = [(parameter.requires_grad, parameter.grad) for parameter in parameters]
    try:
        for parameter in parameters:
            parameter.requires_grad_(True)
            parameter.grad = None
        with torch.enable_grad(), evaluation_mode(module):
            function(sample).float().sum().backward()
        return [parameter for parameter in parameters if parameter.grad is not None]
    finally:
        for parameter, (flag, gradient) in zip(parameters, saved):
            parameter.requires_grad_(flag)
            parameter.grad = gradient


class CosineHead(nn.Module):
    """Logits cos(z, w_k) / τ of an embedding z against K prototypes w_k (the rows of ``weight``)."""

    def __init__(self, dim: int, n_clusters: int, temperature: float):
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ConfigError(f"refine.temperature must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.weight = nn.Parameter(F.normalize(torch.randn(n_clusters, dim), dim=1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).T / self.temperature

    @torch.no_grad()
    def initialise(self, means: torch.Tensor, present: torch.Tensor) -> None:
        """Prototypes ← the class means of the clusters that have any (the others keep theirs)."""
        self.weight[present] = means[present].to(self.weight)


class RefinedModel(ClusteringModel):
    """A fitted method's network refined by one of SCAN's two training steps (Van Gansbeke et al., ECCV 2020).

    The feature network is whatever the method's ``embed`` runs (for HTCN and HaDis the EMA target
    network: its parameters, frozen while the method trained, are trained here); a new
    :class:`CosineHead` over the embedding gives the labels (``label_source = "head"``).

    At the start (``on_fit_start``) the pseudo-labels are the method's own: its cluster head's
    ``cluster_probabilities`` (label source "head"), or, for a k-means method, the soft
    assignments to its fitted centroids (:func:`~deepclust.cluster.soft_assign` with τ =
    ``refine.temperature``). :func:`~deepclust.refine.selection.balanced_selection` keeps the most
    confident images of each cluster up to one shared count, and the head starts from the unit
    class means of their embeddings: the nearest-class-mean classifier of the pseudo-labels.

    ``refine.objective: self_label`` (Sec. 3.2): a step trains the cross-entropy between the
    head's prediction on a strong view (``refine.augmentation``) of each selected image of the
    batch and its pseudo-label; at every later epoch the images are selected again from the head's
    current predictions.

    ``refine.objective: neighbours`` (Sec. 3.1): the ``refine.neighbours.k`` nearest neighbours of
    every image are mined once at the start (:func:`~deepclust.refine.neighbours.mine_neighbours`,
    in ``refine.neighbours.space``); a step draws one of them for each image of the batch and
    trains :class:`~deepclust.losses.NeighbourConsistencyLoss` between the head's predictions on a
    strong view of each image and of its neighbour, over every image of the batch.
    """

    label_source = "head"

    def __init__(self, base: ClusteringModel):
        super().__init__(base.config, base.n_clusters, base.input_shape)
        options = with_shared_sections(base.config)["refine"]
        self.selection_options = check_selection(options["selection"])
        self.objective = options["objective"]
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"refine.objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        self.neighbour_options = check_neighbours(options["neighbours"])
        self.neighbour_loss = NeighbourConsistencyLoss(self.neighbour_options["entropy_weight"])
        self.base = base
        device = next(base.parameters()).device
        sample = torch.zeros(2, *base.input_shape, device=device)
        features = parameters_used_by(base, base.embed, sample)
        with torch.no_grad(), evaluation_mode(base):
            width = base.embed(sample).shape[1]
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        for parameter in features:
            parameter.requires_grad_(True)
        self.head = CosineHead(width, base.n_clusters, options["temperature"]).to(device)
        self.augment = strong_augmentation(options["augmentation"], base.image_size, base.input_shape[0])
        self.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("selected", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("neighbours", torch.zeros(0, self.neighbour_options["k"], dtype=torch.long))

    # --- pseudo-labels --------------------------------------------------------------------
    def method_probabilities(self, embeddings: torch.Tensor, context: TrainingContext) -> torch.Tensor:
        """(N, K) soft assignments of the fitted method: its head's; for a k-means method
        :func:`~deepclust.cluster.soft_assign` to its centroids (its ``inference.kmeans_metric``);
        for another clustering of the embeddings, soft assignments (cosine) to the unit means of its clusters."""
        if self.base.label_source == "head":
            return context.map_dataset(self.base.cluster_probabilities).to(context.device)
        if self.base.label_source == "kmeans" and self.base.centroids.numel():
            centroids = self.base.centroids
            metric = self.config.get("inference", {}).get("kmeans_metric", "cosine")
        else:
            labels = context.map_dataset(self.base.predict_labels).long().to(context.device)
            centroids, metric = class_means(embeddings, labels, torch.ones_like(labels, dtype=torch.bool),
                                            self.n_clusters)[0], "cosine"
        return soft_assign(embeddings, centroids, metric=metric, temperature=self.head.temperature)

    def select(self, probabilities: torch.Tensor) -> Selection:
        """Keep the balanced selection of ``probabilities`` as this epoch's pseudo-labels."""
        selection = balanced_selection(probabilities, **self.selection_options)
        self.pseudo_labels = selection.labels.to(self.pseudo_labels.device)
        self.selected = selection.selected.to(self.selected.device)
        return selection

    @torch.no_grad()
    def on_fit_start(self, context: TrainingContext) -> None:
        with evaluation_mode(self):
            embeddings = context.map_dataset(self.base.embed).to(context.device)
            selection = self.select(self.method_probabilities(embeddings, context))
        self.head.initialise(*class_means(embeddings, selection.labels, selection.selected, self.n_clusters))
        if self.objective == "neighbours":
            self.neighbours = self.mine(embeddings, context)

    def mine(self, embeddings: torch.Tensor, context: TrainingContext) -> torch.Tensor:
        """The (N, k) neighbour indices of ``refine.neighbours`` for the dataset's ``embeddings``."""
        k, space = self.neighbour_options["k"], self.neighbour_options["space"]
        if k >= context.n_samples:
            raise ConfigError(f"refine.neighbours.k must be below the number of images ({context.n_samples}), "
                              f"got {k}")
        images = context.map_dataset(lambda batch: batch.flatten(1)).to(context.device) \
            if space == "embedding_and_input" else None
        return mine_neighbours(embeddings, images, k, space).to(self.neighbours.device)

    @torch.no_grad()
    def on_epoch_start(self, epoch: int, context: TrainingContext) -> None:
        if epoch > 0 and self.objective == "self_label":  # epoch 0: the method's own pseudo-labels
            with evaluation_mode(self):
                self.select(context.map_dataset(self.cluster_probabilities).to(context.device))

    # --- training -------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.objective == "neighbours":
            return self.neighbour_step(batch)
        keep = self.selected[batch.indices]
        images, targets, weights = batch.images, self.pseudo_labels[batch.indices], keep.float()
        if int(keep.sum()) >= 2:  # else the whole batch passes, weighted 0/1 (BatchNorm needs two images)
            images, targets, weights = images[keep], targets[keep], weights[keep]
        logits = self.head(self.base.embed(self.augment(images))).float()
        loss = (F.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum().clamp_min(1.0)
        return {"loss": loss, "selected": keep.float().mean()}

    def neighbour_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """SCAN's clustering step on the batch: each image against one of its neighbours, drawn at random."""
        if batch.fetch is None:
            raise RuntimeError("refine.objective neighbours trains through the Trainer, whose batches fetch the "
                               "neighbours' images")
        columns = torch.randint(self.neighbours.shape[1], (batch.indices.numel(),), generator=batch.generator)
        partners = self.neighbours[batch.indices, columns.to(self.neighbours.device)]
        anchors = gather(self.cluster_probabilities(self.augment(batch.images)))
        neighbours = gather(self.cluster_probabilities(self.augment(batch.fetch(partners))))
        return {"loss": self.neighbour_loss(anchors, neighbours),
                "entropy_gap": marginal_entropy_gap(anchors.detach().float())}

    # --- inference ------------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.base.embed(images)

    def cluster_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.embed(images)).float(), dim=1)
