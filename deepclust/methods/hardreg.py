"""HardReg: online deep clustering with hard-assignment regularisation, no data augmentation.

Mahon & Lukasiewicz, "Hard Regularization to Prevent Deep Online Clustering Collapse without Data
Augmentation", AAAI 2024. An encoder φ maps each input to z ∈ R^nz; cluster c is a Gaussian with a
learned mean μ_c and a fixed isotropic covariance σI; the cost d_ic is the squared Mahalanobis
distance with the reference's constant −(nz/2)·log σ
(:func:`~deepclust.cluster.hard_assignment.gaussian_cost`). Every batch is assigned greedily with the
penalty log(n_c + 1) on the running batch counts (minus log π_c with a prior), which prevents
collapse without augmentation; the loss is the mean assigned cost, back-propagated into φ and μ.

``method.regulariser`` swaps the assignment/loss for the paper's comparison baselines
(:mod:`deepclust.losses.assignment_baselines`): no_reg, var, var_improved, kl, kl_cent, sinkhorn,
ng, ckm.

Inputs: images through any image backbone ('lenet' is the paper's 'simp' encoder), or sensor
windows stored as (C, 1, L) arrays (``deepclust.data.realdisp``) through ``conv1d``. The method, its
presets and its known deviations: ``docs/methods/hardreg.md``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from deepclust.augment import Normalize, to_float
from deepclust.cluster import gaussian_cost, hard_regularised_assignment
from deepclust.data.imbalance import imbalance_prior
from deepclust.engine.config import ConfigError, deep_merge
from deepclust.engine.distributed import gather
from deepclust.engine.model import Batch, ClusteringModel, TrainingContext
from deepclust.module_state import evaluation_mode
from deepclust.engine.optim import build_optimizer
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.engine.step import amp_enabled, train_batch
from deepclust.evaluation import kl_to_prior
from deepclust.losses import (
    AssignedCostLoss, Assignment, kl_regulariser, kmeans_objective, neural_gas, no_regulariser,
    sinkhorn_regulariser, variance_regulariser,
)
from deepclust.methods.base import DeepClusterer, check_n_clusters
from deepclust.methods.inputs import as_tensor
from deepclust.methods.registry import register_method

WINDOW_BACKBONES = ("conv1d",)
#: Backbones whose last layer is linear: their ``feature_dim`` is the latent size nz unless set.
LATENT_BACKBONES = ("lenet", "mlp")


def resolve_prior(prior, n_clusters: int) -> np.ndarray | None:
    """``method.prior``: None (uniform), ``"imbalance1"``/``"imbalance2"``/``"imbalance3"`` (the
    prior π = p / Σ p of that imbalance protocol for K classes) or K positive weights."""
    if prior is None:
        return None
    if isinstance(prior, str):
        levels = {f"imbalance{level}": level for level in (1, 2, 3)}
        if prior not in levels:
            raise ConfigError(f"method.prior must be null, one of {', '.join(levels)} or {n_clusters} "
                              f"weights; got '{prior}'")
        return imbalance_prior(levels[prior], n_clusters)
    weights = np.asarray(prior, dtype=np.float64)
    if weights.shape != (n_clusters,) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ConfigError(f"method.prior must hold n_clusters={n_clusters} positive weights, got {prior!r}")
    return weights / weights.sum()


def _hard_assignment(model: HardRegModel, z, costs, counts) -> Assignment:
    labels, _ = hard_regularised_assignment(costs, counts, model.log_prior if model.prior_active else None)
    return Assignment(labels, model.assigned_cost(costs, labels))


def _sinkhorn_assignment(model: HardRegModel, z, costs, counts) -> Assignment:
    options = model.config["method"]
    return sinkhorn_regulariser(costs, epsilon=float(options["sinkhorn_epsilon"]),
                                n_iters=int(options["sinkhorn_iterations"]), pick=options["sinkhorn_pick"])


#: ``method.regulariser`` → the batch's assignment and loss, from (model, codes z, costs, counts n_c).
ASSIGNMENT_RULES: dict[str, Callable[..., Assignment]] = {
    "hard": _hard_assignment,
    "no_reg": lambda model, z, costs, counts: no_regulariser(costs),
    "var": lambda model, z, costs, counts: variance_regulariser(costs, improved=False),
    "var_improved": lambda model, z, costs, counts: variance_regulariser(costs, improved=True),
    "kl": lambda model, z, costs, counts: kl_regulariser(costs, centroid_term=False),
    "kl_cent": lambda model, z, costs, counts: kl_regulariser(costs, centroid_term=True),
    "sinkhorn": _sinkhorn_assignment,
    "ng": lambda model, z, costs, counts: neural_gas(costs, counts,
                                                     temperature=float(model.config["method"]["ng_temperature"])),
    "ckm": lambda model, z, costs, counts: kmeans_objective(z, model.means),
}
REGULARISERS = tuple(ASSIGNMENT_RULES)


class HardRegModel(ClusteringModel):
    """Encoder φ and the Gaussian cluster means μ (K, nz); see the module docstring."""

    label_source = "head"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        if config["backbone"]["name"] in LATENT_BACKBONES and "feature_dim" not in config["backbone"]:
            config = deep_merge(config, {"backbone": {"feature_dim": int(config["method"]["nz"])}})
        super().__init__(config, n_clusters, input_shape, mean, std)
        options = config["method"]
        self.regulariser = options["regulariser"]
        if self.regulariser not in REGULARISERS:
            raise ConfigError(f"unknown method.regulariser '{self.regulariser}'; valid: {', '.join(REGULARISERS)}")
        self.nz = int(options["nz"])
        self.sigma = float(options["sigma"])
        if self.nz < 1 or not self.sigma > 0:
            raise ConfigError(f"method.nz must be >= 1 and method.sigma > 0, got {self.nz} and {self.sigma}")
        self.keep_scores = bool(options["keep_scores"])
        self.constrained_eval = bool(options["constrained_eval"])
        self.windows = config["backbone"]["name"] in WINDOW_BACKBONES
        if self.windows and (len(self.input_shape) != 3 or self.input_shape[1] != 1):
            raise ValueError(f"backbone '{config['backbone']['name']}' takes sensor windows stored as (C, 1, L) "
                             f"arrays (deepclust.data.realdisp), got samples of shape {self.input_shape}")
        backbone = self.make_backbone()
        channels = self.input_shape[0]
        self.encoder = backbone if backbone.feature_dim == self.nz else \
            nn.Sequential(backbone, nn.Linear(backbone.feature_dim, self.nz))
        constants = options["input_normalisation"]
        if constants is not None and (not isinstance(constants, (list, tuple)) or len(constants) != 2):
            raise ConfigError(f"method.input_normalisation must be null or [mean, std], got {constants!r}")
        self.input_normalisation = nn.Identity() if constants is None else \
            Normalize(constants[0], constants[1], channels, owner="method.input_normalisation")
        self.means = nn.Parameter(torch.randn(n_clusters, self.nz))
        self.assigned_cost = AssignedCostLoss()
        prior = resolve_prior(options["prior"], n_clusters)
        self.prior = prior
        self.register_buffer("log_prior", None if prior is None else torch.from_numpy(np.log(prior)))
        self.prior_from_epoch = options["prior_from_epoch"]
        if isinstance(self.prior_from_epoch, bool) or not isinstance(self.prior_from_epoch, int) \
                or self.prior_from_epoch < 0:
            raise ConfigError(f"method.prior_from_epoch must be an epoch number >= 0, got {self.prior_from_epoch!r}")
        self.prior_active = False  # whether the current batch's assignment subtracts log π
        self.register_buffer("counts", torch.zeros(n_clusters, dtype=torch.long))
        self.last_assignments: torch.Tensor | None = None

    # --- encoder and cost ----------------------------------------------------------------------
    def _prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.windows:  # (B, C, 1, L) -> (B, C, L); the image resize does not apply to windows
            return self.input_normalisation(self.eval_transform.normalize(inputs)).squeeze(2)
        return self.input_normalisation(self.eval_transform(inputs))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._prepare(images))

    def costs(self, images: torch.Tensor) -> torch.Tensor:
        """(B, K) float64 costs d_ic of un-augmented inputs."""
        return gaussian_cost(self.embed(images), self.means, self.sigma)

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One batch; with a prior, the greedy assignment subtracts log π from epoch
        ``prior_from_epoch`` on (the reference: from its second epoch; ``partial_fit`` batches
        count as epoch 0)."""
        self.prior_active = self.log_prior is not None and batch.epoch >= self.prior_from_epoch
        z = gather(self.embed(batch.images))  # the assignment is regularised over the global batch
        costs = gaussian_cost(z, self.means, self.sigma)
        counts = self.counts if self.keep_scores else torch.zeros_like(self.counts)
        labels, loss = ASSIGNMENT_RULES[self.regulariser](self, z, costs, counts)
        if self.keep_scores:
            self.counts = counts + torch.bincount(labels, minlength=self.n_clusters)
        self.last_assignments = labels.detach()
        return {"loss": loss, "assigned_cost": self.assigned_cost(costs.detach(), labels),
                "batch_clusters_used": torch.tensor(float(labels.unique().numel()))}

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.encoder.parameters())},
                {"params": [self.means], "lr_scale": float(self.config["method"]["means_lr_scale"])}]

    @torch.no_grad()
    def initialise_means(self, images: torch.Tensor) -> None:
        """Warm start: the means become the codes of the first K inputs (encoder in eval mode)."""
        if images.shape[0] < self.n_clusters:
            raise ValueError(f"warm start needs at least n_clusters={self.n_clusters} inputs, got {images.shape[0]}")
        with evaluation_mode(self):
            self.means.copy_(self.embed(images[: self.n_clusters]).float())

    def on_fit_start(self, context: TrainingContext) -> None:
        if self.config["method"]["warm_start"]:
            first = []
            for images, _ in context.iterate_dataset():
                first.append(images)
                if sum(len(part) for part in first) >= self.n_clusters:
                    break
            self.initialise_means(torch.cat(first))

    def on_epoch_start(self, epoch: int, context: TrainingContext) -> None:
        self.counts.zero_()

    # --- inference ----------------------------------------------------------------------------
    def cluster_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """p(c | x) ∝ exp(−d_xc), the posterior under equal cluster weights."""
        return torch.softmax(-self.costs(images), dim=1).float()

    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        """argmin_c d_ic; with ``method.constrained_eval`` the greedy hard-regularised assignment of
        each evaluation batch instead."""
        costs = self.costs(images)
        if self.constrained_eval:
            return hard_regularised_assignment(costs, None, self.log_prior)[0]
        return costs.argmin(dim=1)


@register_method("hardreg")
class HardReg(DeepClusterer):
    """HardReg (Mahon & Lukasiewicz, AAAI 2024): online clustering with hard-assignment regularisation.

    Besides ``fit`` (the engine's epochs), ``partial_fit(X_batch)`` updates the model from one
    batch (building and initialising it on the first call, or going on from the network of an
    earlier ``fit``) and stores that batch's hard assignments in ``labels_``; ``predict(X_batch)``
    labels new inputs.
    """

    model_class = HardRegModel

    def extra_metrics(self, labels: np.ndarray) -> dict:
        """With a prior, KL* is measured against the prior the method was given. With
        ``method.report_best_nmi_epoch`` also ``best_nmi_epoch``: the evaluation (of those in
        ``history_`` and the final one) with the highest NMI, as the reference reports — a choice
        that reads the labels, marked ``"selected_with_labels": True``."""
        extra = {}
        if self.model_.prior is not None:
            extra["kl_star"] = kl_to_prior(labels, self.model_.n_clusters, self.model_.prior)
        if self.config_["method"]["report_best_nmi_epoch"]:
            final = {**self.metrics_, **extra, "epoch": self.metrics_["epochs"]}
            evaluated = [record for record in [*self.history_, final] if np.isfinite(record.get("nmi", np.nan))]
            if evaluated:
                best = max(evaluated, key=lambda record: record["nmi"])  # the first of equal NMIs
                shown = ("epoch", "acc", "nmi", "ari", "kl_star", "n_clusters_used")
                extra["best_nmi_epoch"] = {"selected_with_labels": True,
                                           **{key: best[key] for key in shown if key in best}}
        return extra

    def fit(self, X, y=None):
        """The engine's training (:meth:`DeepClusterer.fit`); a ``partial_fit`` after it goes on from the
        fitted network with a new optimizer."""
        vars(self).pop("optimizer_", None)
        return super().fit(X, y)

    def _start_online(self, X, y) -> None:
        config = self.resolved_config()
        dataset = self._training_dataset(X, y, config)
        n_clusters = check_n_clusters(self.n_clusters, len(dataset))
        self.device_ = resolve_device(self.device)
        seed_everything(self.seed)
        self.model_ = self._build_model(config, n_clusters, dataset.shape, dataset.mean, dataset.std).to(self.device_)
        self.config_, self.input_shape_ = config, tuple(dataset.shape)
        self.mean_, self.std_ = dataset.mean, dataset.std
        if config["method"]["warm_start"]:
            self.model_.initialise_means(to_float(as_tensor(dataset.images).to(self.device_)))

    def partial_fit(self, X, y=None):
        """One online update from the batch ``X``; its training assignments go to ``labels_``.

        The update is the engine's (:func:`~deepclust.engine.step.train_batch`): ``training.amp``
        and ``training.grad_clip`` apply, and a non-finite loss or gradient raises before the weights change.
        """
        if not hasattr(self, "model_"):
            self._start_online(X, y)
        if not hasattr(self, "optimizer_"):  # the first batch, or the first after fit / load: goes on from model_
            self.optimizer_ = build_optimizer(self.model_.parameter_groups(), self.config_["optimizer"])
            self.n_batches_seen_ = 0
        images = to_float(self._images(X).to(self.device_))
        model = self.model_.train()
        batch = Batch(images=images, indices=torch.arange(len(images), device=self.device_), epoch=0,
                      step=self.n_batches_seen_)
        training = self.config_["training"]
        train_batch(model.training_step, batch, self.optimizer_, model.parameters(),
                    amp=amp_enabled(training, self.device_), grad_clip=training.get("grad_clip"),
                    where=f"in partial_fit batch {self.n_batches_seen_}")
        self.n_batches_seen_ += 1
        self.labels_ = model.last_assignments.cpu().numpy()
        return self
