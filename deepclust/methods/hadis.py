"""HaDis: deep clustering with diffused sampling and hardness-aware self-distillation.

The method, its presets and its known deviations: ``docs/methods/hadis.md``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepclust.cluster import kmeans
from deepclust.engine import (
    Batch, ClusteringModel, TrainingContext, check_momentum_schedule, ema_update, evaluation_mode, make_target,
    scheduled_momentum,
)
from deepclust.engine.config import ConfigError
from deepclust.engine.distributed import broadcast_, gather
from deepclust.heads import mlp
from deepclust.losses import DiffusedAlignmentLoss, HardnessAwareDistillationLoss, PrototypeContrastLoss
from deepclust.methods.base import DeepClusterer
from deepclust.methods.registry import register_method

#: Values of ``method.ema_timing``: when the target moves within a step.
EMA_TIMINGS = ("after_step", "before_step")


def diffuse(latent: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The diffused sample q̃ = q + ε, ε ~ N(0, σ² I) (HaDis, Zhang & Huang, arXiv 2401.14038, DSA).

    ``std`` = σ (``latent_std``, 0.001 in the paper's configurations); σ = 0 returns ``latent`` itself.
    ε is drawn from ``generator`` (torch's global stream when None).
    """
    if std < 0:
        raise ValueError(f"latent_std must be >= 0, got {std}")
    if std == 0:
        return latent
    return latent + std * torch.randn(latent.shape, generator=generator, device=latent.device, dtype=latent.dtype)


def init_predictor(predictor: nn.Module) -> None:
    """The reference's predictor initialisation: linear weights N(0, 0.01²), biases 0, BN weight 1 / bias 0."""
    for module in predictor.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.01)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class HaDisModel(ClusteringModel):
    """Online encoder f_q + projector g_q + predictor q; momentum target f_k + g_k (BYOL-style).

    Per step and direction (views swapped and averaged): q = g_q(f_q(x_a)), k = normalise(g_k(f_k(x_b))),
    p = q(q + ε) with ε ~ N(0, σ²) (σ = 0 in warm-up);
    L = L_DSA(p, k) + L_HSD(k, p) + λ · L_proto(q, k, y) (λ = 0 in warm-up), y the pseudo-labels that
    k-means on the target embeddings of the whole dataset gives at the start of every epoch.

    Under torch.distributed the online projections, target embeddings and pseudo-labels of the
    batch are gathered (hardest negatives and prototypes come from the global batch), ε comes from
    the step's shared generator, every process embeds a share of the dataset for the k-means and
    rank 0's pseudo-labels are kept.

    ``ema_timing``: the target moves after the optimizer step (``after_step``) or, as in the
    reference, before it (``before_step``: θ_k ← m·θ_k + (1 − m)·θ_q with the θ_q this step's loss
    was computed with, after the target embeddings of the step are taken). With
    ``balanced_resampling`` an epoch draws N samples with replacement, sample i with probability ∝
    1 / (size of its pseudo-cluster) — the reference's ``data_resample``.
    """

    label_source = "kmeans"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        options = config["method"]
        check_momentum_schedule(options["momentum_schedule"])
        if options["ema_timing"] not in EMA_TIMINGS:
            raise ConfigError(f"method.ema_timing must be one of {', '.join(EMA_TIMINGS)}, "
                              f"got {options['ema_timing']!r}")
        if not isinstance(options["balanced_resampling"], bool):
            raise ConfigError(f"method.balanced_resampling must be true or false, "
                              f"got {options['balanced_resampling']!r}")
        self.options = options
        self.backbone = self.make_backbone()
        feature_dim = int(options["feature_dim"])
        self.projector = mlp([self.backbone.feature_dim, int(options["projector_hidden_dim"]), feature_dim])
        self.predictor = mlp([feature_dim, int(options["predictor_hidden_dim"]), feature_dim])
        init_predictor(self.predictor)
        self.target_backbone = make_target(self.backbone)
        self.target_projector = make_target(self.projector)
        if config["augmentation"]["name"] == "byol":  # BYOL's asymmetric views
            self.views = nn.ModuleList([self.make_augmentation(view=0), self.make_augmentation(view=1)])
        else:
            self.views = nn.ModuleList([self.make_augmentation()])
        self.alignment = DiffusedAlignmentLoss()
        self.hsd = HardnessAwareDistillationLoss(float(options["hsd_temperature"]))
        self.prototype_contrast = PrototypeContrastLoss(n_clusters, float(options["temperature"]))
        self.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long))

    # --- training -------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        online = list(self.backbone.parameters()) + list(self.projector.parameters())
        return [{"params": online},
                {"params": list(self.predictor.parameters()), "lr_scale": float(self.options["predictor_lr_scale"])}]

    def _target_embedding(self, views: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.target_projector(self.target_backbone(views)), dim=1)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.pseudo_labels.numel() == 0:
            raise RuntimeError("HaDis has no pseudo-labels yet: on_epoch_start must run before training_step")
        warm_up = batch.epoch < int(self.options["warmup_epochs"])
        latent_std = 0.0 if warm_up else float(self.options["latent_std"])
        labels = self.pseudo_labels[gather(batch.indices)]
        views = [self.views[0](batch.images), self.views[-1](batch.images)]
        online = [gather(self.projector(self.backbone(view))) for view in views]
        with torch.no_grad():
            targets = [gather(self._target_embedding(view)) for view in views]
        directions = [(0, 1), (1, 0)] if self.options["symmetric"] else [(0, 1)]
        align = hsd = proto = 0.0
        for a, b in directions:
            prediction = self.predictor(diffuse(online[a], latent_std, batch.generator))
            align = align + self.alignment(prediction, targets[b])
            hsd = hsd + self.hsd(targets[b], prediction)
            proto = proto + self.prototype_contrast(online[a], targets[b], labels)
        align, hsd, proto = (term / len(directions) for term in (align, hsd, proto))
        loss = align + hsd
        if warm_up:
            proto = proto.detach()
        else:
            loss = loss + float(self.options["cluster_loss_weight"]) * proto
        return {"loss": loss, "align": align, "hsd": hsd, "proto": proto}

    @torch.no_grad()
    def on_epoch_start(self, epoch: int, context: TrainingContext) -> None:
        """Pseudo-labels: k-means (k-means++, cosine) on the target embeddings of the whole dataset."""
        with evaluation_mode(self):
            embeddings = context.map_dataset(self.embed).to(context.device)
        result = kmeans(embeddings, self.n_clusters, n_init=int(self.options["kmeans_restarts"]),
                        max_iter=int(self.options["kmeans_max_iter"]), tol=float(self.options["kmeans_tol"]),
                        metric="cosine", seed=int(self.options["kmeans_seed"]))
        self.pseudo_labels = broadcast_(result.labels.to(self.pseudo_labels.device))

    def epoch_order(self, n_samples: int, generator: torch.Generator) -> torch.Tensor:
        """A random permutation, or with ``balanced_resampling`` ``n_samples`` indices drawn with
        replacement, weight 1 / |pseudo-cluster of i| (every pseudo-cluster equally likely)."""
        if not self.options["balanced_resampling"]:
            return super().epoch_order(n_samples, generator)
        labels = self.pseudo_labels.cpu()
        if labels.numel() != n_samples:
            raise RuntimeError(f"HaDis: balanced_resampling needs the pseudo-labels of all {n_samples} samples, "
                               f"has {labels.numel()}")
        weights = 1.0 / torch.bincount(labels).double()[labels]
        return torch.multinomial(weights, n_samples, replacement=True, generator=generator)

    def _update_target(self, global_step: int, context: TrainingContext) -> None:
        # the momentum of update n = global_step + 1, counted from 1 as in the reference
        momentum = scheduled_momentum(float(self.options["momentum_base"]), self.options["momentum_schedule"],
                                      global_step + 1, context.total_steps)
        ema_update(self.target_backbone, self.backbone, momentum)
        ema_update(self.target_projector, self.projector, momentum)

    def on_before_step(self, global_step: int, context: TrainingContext) -> None:
        if self.options["ema_timing"] == "before_step":
            self._update_target(global_step, context)

    def on_after_step(self, global_step: int, context: TrainingContext) -> None:
        if self.options["ema_timing"] == "after_step":
            self._update_target(global_step, context)

    # --- inference ------------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """normalise(g_k(f_k(x))): the target branch's normalised embedding of un-augmented images."""
        return self._target_embedding(self.eval_transform(images))


@register_method("hadis")
class HaDis(DeepClusterer):
    """HaDis (Zhang & Huang, "Deep Clustering with Diffused Sampling and Hardness-aware
    Self-distillation", arXiv 2401.14038), built on ProPos (Huang et al., TPAMI 2022).

    A BYOL-style online/momentum-target pair trained with diffused sampling alignment, hardness-aware
    self-distillation and prototypical contrast over per-epoch k-means pseudo-labels; the clustering
    is k-means on the normalised target embeddings.
    """

    model_class = HaDisModel
