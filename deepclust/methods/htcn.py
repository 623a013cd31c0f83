"""HTCN: Heterogeneous Tri-stream Clustering Network (Deng, Huang, Wang, Neural Processing Letters 2023).

The method, its presets and its known deviations: ``docs/methods/htcn.md``.
"""
from __future__ import annotations

import torch
from torch import nn

from deepclust.engine import ClusteringModel, check_momentum_schedule, ema_update, make_target, scheduled_momentum
from deepclust.engine.config import ConfigError
from deepclust.engine.distributed import gather
from deepclust.heads import cluster_head, mlp
from deepclust.losses import HubClusterConsistencyLoss, HubPredictionLoss
from deepclust.methods.base import DeepClusterer
from deepclust.methods.registry import register_method


class HTCNStream(nn.Module):
    """Backbone f → instance projector g → cluster head c, the head reading the projection z = g(f(x)).

    The online network and the EMA target network are both of this kind; only the online one also
    has a predictor (held by :class:`HTCNModel`), which makes the streams heterogeneous.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.cluster_head = head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(projection z, cluster assignment softmax) of a batch."""
        projection = self.projector(self.backbone(images))
        return projection, self.cluster_head(projection)


class HTCNModel(ClusteringModel):
    """HTCN's three streams: two weight-sharing online streams and an EMA target stream.

    Each image gives three augmented views x1, x2, x3 of the same pipeline. All three pass through the
    online network (z_v, predictor output p_v = q(z_v), cluster assignment o_v) — views 1 and 2 are
    the two online streams, view 3 the hub — and, without gradient, through the target network
    (t_v, s_v). The loss is ``instance_weight`` · L_ins + ``cluster_weight`` · L_clu (see
    :class:`~deepclust.losses.htcn_hub_prediction.HubPredictionLoss` and
    :class:`~deepclust.losses.htcn_cluster_consistency.HubClusterConsistencyLoss`).

    After every optimizer step the target's parameters move to β·θ' + (1 − β)·θ (buffers untouched:
    the target's BatchNorm keeps its own running statistics and, like the reference, runs in train
    mode during training). β is ``momentum`` throughout, or, with ``momentum_schedule: cosine``,
    rises from ``momentum`` to 1 along BYOL's half cosine.

    Under torch.distributed the predictions, projections and cluster assignments of every view
    (online and target) are gathered, so both losses and the cluster marginals of the entropy
    term are those of the global batch.

    Inference reads the *target* network on the un-augmented image: labels are the argmax of the
    target's cluster head, and ``embed`` (``transform``) is the target's projection t (the
    representation the cluster head reads).
    """

    label_source = "head"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        options = config["method"]
        schedule = check_momentum_schedule(options["momentum_schedule"])
        momentum = float(options["momentum"])
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"method.momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.momentum_schedule = schedule
        self.instance_weight = float(options["instance_weight"])
        self.cluster_weight = float(options["cluster_weight"])

        backbone = self.make_backbone()
        projection_dim = int(options["projection_dim"])
        self.online = HTCNStream(
            backbone,
            mlp([backbone.feature_dim, int(options["projector_hidden"]), projection_dim]),
            cluster_head([projection_dim, int(options["cluster_hidden"]), n_clusters]),
        )
        self.predictor = mlp([projection_dim, int(options["predictor_hidden"]), projection_dim])
        self.target = make_target(self.online)
        self.augment = self.make_augmentation()
        self.instance_loss = HubPredictionLoss()
        self.cluster_loss = HubClusterConsistencyLoss(float(options["cluster_temperature"]),
                                                      float(options["entropy_weight"]))

    # --- training -------------------------------------------------------------------------
    def training_step(self, batch):
        views = [self.augment(batch.images) for _ in range(3)]
        projections, assignments = zip(*(self.online(view) for view in views))
        predictions = [gather(self.predictor(projection)) for projection in projections]
        assignments = [gather(assignment) for assignment in assignments]
        with torch.no_grad():
            target_projections, target_assignments = zip(*(map(gather, self.target(view)) for view in views))
        instance = self.instance_loss(predictions, target_projections)
        cluster = self.cluster_loss(assignments, target_assignments)
        loss = self.instance_weight * instance + self.cluster_weight * cluster
        return {"loss": loss, "instance": instance, "cluster": cluster}

    def current_momentum(self, global_step: int, total_steps: int) -> float:
        """β after optimizer step ``global_step`` (0-based) of ``total_steps``."""
        return scheduled_momentum(self.momentum, self.momentum_schedule, global_step + 1, total_steps)

    def on_after_step(self, global_step, context):
        ema_update(self.target, self.online, self.current_momentum(global_step, context.total_steps))

    # --- inference ------------------------------------------------------------------------
    def embed(self, images):
        return self.target(self.eval_transform(images))[0]

    def cluster_probabilities(self, images):
        return self.target(self.eval_transform(images))[1]


@register_method("htcn")
class HTCN(DeepClusterer):
    """HTCN: Heterogeneous Tri-stream Clustering Network (Deng, Huang, Wang, Neural Processing Letters 2023).

    Two weight-sharing online streams and an EMA target stream; BYOL-style instance prediction with
    view 3 as the hub plus Contrastive Clustering's cluster-level loss between online and target;
    labels from the target network's cluster head.
    """

    model_class = HTCNModel
