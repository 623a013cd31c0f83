"""DCHL: Deep Clustering with Hybrid-Grained Contrastive and Discriminative Learning.

The method, its presets and its known deviations: ``docs/methods/dchl.md``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust.cluster import seeded_batch_kmeans
from deepclust.engine.distributed import gather
from deepclust.engine.model import Batch, ClusteringModel, EpochPass
from deepclust.heads import cluster_head, mlp
from deepclust.losses import ClusterContrastiveLoss, InstanceGroupLoss, NTXentLoss
from deepclust.methods.base import DeepClusterer
from deepclust.methods.registry import register_method


class DCHLModel(ClusteringModel):
    """Backbone f → h; instance projector h → z (L2-normalised); shared cross projector h → v;
    coarse cluster head v → c (softmax over K); fine group head v → g (L2-normalised).

    Per batch, two augmented views; the loss is

        w_ins·NT-Xent(z1, z2; τ_i) + w_clu·CCL(c1, c2; τ_c, with entropy)
        + w_self_group·L_self(g; groups) + w_cross_group·L_cross(z; groups),

    where the groups are found by k-means inside the batch on g1 and on g2 separately (M groups,
    seeded by the first M rows; see :func:`~deepclust.cluster.batch_kmeans.seeded_batch_kmeans`,
    which also documents M > B). Labels are the argmax of c on un-augmented images; ``embed``
    returns the backbone feature h.

    Under torch.distributed z, c and g of both views are gathered: the instance negatives, the
    cluster columns and marginals, and the in-batch k-means groups are those of the global batch.

    ``method.unlabeled_pass: instance`` with a dataset holding an "unlabeled" part (STL-10 loaded
    with ``include_unlabeled``) makes every epoch two passes, as the reference's STL-10 trainer:
    the unlabelled images with the instance loss alone, then the other images with every term.
    """

    label_source = "head"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        options = config["method"]
        for key in ("n_groups", "kmeans_iterations"):
            if isinstance(options[key], bool) or not isinstance(options[key], int) or options[key] < 1:
                raise ValueError(f"method.{key} must be an integer >= 1, got {options[key]!r}")
        self.backbone = self.make_backbone()
        width = self.backbone.feature_dim
        hidden = int(options["hidden_dim"] or width)
        self.instance_projector = mlp([width, hidden, int(options["instance_dim"])], batch_norm=False)
        self.cross_projector = mlp([width, hidden], batch_norm=False, last_activation=nn.ReLU())
        self.cluster_head = cluster_head([hidden, n_clusters])
        self.group_head = mlp([hidden, int(options["group_dim"])])
        self.augment = self.make_augmentation()
        self.n_groups = options["n_groups"]
        self.kmeans_iterations = options["kmeans_iterations"]
        self.instance_loss = NTXentLoss(options["instance_temperature"])
        self.cluster_loss = ClusterContrastiveLoss(options["cluster_temperature"], options["entropy_weight"])
        self.group_loss = InstanceGroupLoss(options["group_temperature"])
        self.weights = {term: float(options[f"{term}_weight"])
                        for term in ("instance", "cluster", "self_group", "cross_group")}
        self.unlabeled_pass = options.get("unlabeled_pass")
        if self.unlabeled_pass not in (None, "instance"):
            raise ValueError(f"method.unlabeled_pass must be null or 'instance', got {self.unlabeled_pass!r}")

    def heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, c, g) of already transformed images: instance embedding, cluster assignment, group embedding."""
        features = self.backbone(images)
        shared = self.cross_projector(features)
        group = F.normalize(self.group_head(shared), dim=1)
        return self.instance_embedding(features), self.cluster_head(shared), group

    def instance_embedding(self, features: torch.Tensor) -> torch.Tensor:
        """z of backbone features: the instance projector's output, L2-normalised."""
        return F.normalize(self.instance_projector(features), dim=1)

    def epoch_passes(self, n_samples: int, parts: Mapping[str, np.ndarray]) -> list[EpochPass]:
        """One pass with every term; with ``unlabeled_pass: instance`` and both unlabelled and other
        images, the reference's STL-10 epoch (train_stl.py): the "unlabeled" part with the instance
        loss alone, then the "labelled" rest with all four terms."""
        unlabeled = parts.get("unlabeled")
        if self.unlabeled_pass is None or unlabeled is None or not 0 < len(unlabeled) < n_samples:
            return super().epoch_passes(n_samples, parts)
        labelled = np.setdiff1d(np.arange(n_samples), unlabeled)
        return [EpochPass("unlabeled", unlabeled, ("instance",)), EpochPass("labelled", labelled)]

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        active = tuple(self.weights) if batch.terms is None else batch.terms
        unknown = sorted(set(active) - set(self.weights))
        if unknown:
            raise ValueError(f"DCHL has no loss term(s) {unknown}; its terms: {', '.join(self.weights)}")
        # one forward pass per view, so batch-norm statistics are per view as in the reference
        if active == ("instance",):  # nothing but z is needed
            z1, z2 = (gather(self.instance_embedding(self.backbone(self.augment(batch.images)))) for _ in range(2))
            terms = {"instance": self.instance_loss(z1, z2)}
        else:
            terms = self._every_term(batch.images)
            terms = {name: terms[name] for name in active}
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms}

    def _every_term(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, c1, g1 = map(gather, self.heads(self.augment(images)))
        z2, c2, g2 = map(gather, self.heads(self.augment(images)))
        groups_1 = seeded_batch_kmeans(g1, self.n_groups, self.kmeans_iterations)
        groups_2 = seeded_batch_kmeans(g2, self.n_groups, self.kmeans_iterations)
        return {
            "instance": self.instance_loss(z1, z2),
            "cluster": self.cluster_loss(c1, c2),
            "self_group": self.group_loss(g1, g2, groups_1, groups_2),
            "cross_group": self.group_loss(z1, z2, groups_1, groups_2),
        }

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.eval_transform(images))

    def cluster_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self.cross_projector(self.embed(images)))


@register_method("dchl")
class DCHL(DeepClusterer):
    """DCHL (Deng, Chen, Huang, Zhu, Wang, Lai, "Deep Clustering with Hybrid-Grained Contrastive and
    Discriminative Learning", IEEE TCSVT 2024): instance contrast, coarse cluster contrast and
    self/cross instance-group discrimination against k-means groups found inside each batch.
    """

    model_class = DCHLModel
