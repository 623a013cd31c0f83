"""ConCURL: Consensus Clustering using Unsupervised Representation Learning.

Deshmukh, Regatti, Manavoglu, Dogan, "Representation Learning for Clustering via Building
Consensus" (Machine Learning journal; arXiv 2105.01289). The method, its presets and its known
deviations: ``docs/methods/concurl.md``.

Three consistencies are trained together on two augmented views x1, x2 of a batch:

- exemplar (weight β): NCE instance discrimination of view 1's embedding e = normalise(Linear(h))
  against a memory bank (:class:`~deepclust.losses.nce.NCEMemoryBank`);
- population (weight α): SwAV swapped prediction of the prototype scores s = W·normalise(u),
  u = P(h), against Sinkhorn-balanced targets q (:class:`~deepclust.losses.swapped_prediction.SwappedPredictionLoss`);
- consensus (weight γ): the scores under T fixed Gaussian random projections of u and W must
  predict the same targets (:class:`~deepclust.losses.consensus.ConsensusLoss`).

The prototype rows are L2-normalised in place before every step. Under torch.distributed the
head outputs and indices of the batch are gathered: Sinkhorn balances, and the NCE scores and
memory-bank updates use, the global batch (every process updates its bank identically), and
the noise rows come from the step's shared generator. Labels: k-means (K clusters)
on one embedding of the clean images, chosen by ``inference.embedding`` — ``codes`` (s, the
default: the space the population and consensus losses shape; the comparison that chose it is
benchmarks/results/concurl-embedding-choice.md), ``projection`` (normalise(u)), ``nce`` (e) or
``backbone`` (the feature h) — or, with ``inference.labels: argmax``, the argmax of s. The
reference's own evaluation, which picks the best of four representations with the labels, is
:func:`evaluate_paper_protocol` (``deepclust evaluate --protocol concurl-paper``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust.augment.core import autocast_off
from deepclust.cluster import RandomProjections, sinkhorn_knopp
from deepclust.engine.distributed import gather
from deepclust.engine.inference import map_images
from deepclust.engine.model import Batch, ClusteringModel, TrainingContext
from deepclust.evaluation import evaluate_clustering
from deepclust.heads import mlp
from deepclust.losses import ConsensusLoss, NCEMemoryBank, SwappedPredictionLoss
from deepclust.methods.base import DeepClusterer, to_dataset
from deepclust.methods.registry import register_method
from deepclust.module_state import evaluation_mode

EMBEDDINGS = ("codes", "projection", "nce", "backbone")
LABEL_RULES = ("kmeans", "argmax")


def _choice(section: dict, key: str, valid: tuple[str, ...], where: str) -> str:
    value = section.get(key, valid[0])
    if value not in valid:
        raise ValueError(f"ConCURL: {where}.{key} must be one of {', '.join(valid)}, got {value!r}")
    return value


class ConCURLModel(ClusteringModel):
    """Backbone + NCE head (→ e), projection head P (→ u), prototypes W (no bias), memory bank and
    T random projections; see the module docstring."""

    label_source = "kmeans"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        method = config["method"]
        inference = config.get("inference", {})
        self.embedding = _choice(inference, "embedding", EMBEDDINGS, "inference")
        self.label_source = self.label_source_for(config)
        for key in ("alpha", "beta", "gamma"):
            if method[key] < 0:
                raise ValueError(f"ConCURL: method.{key} must be >= 0, got {method[key]}")
        self.alpha, self.beta, self.gamma = float(method["alpha"]), float(method["beta"]), float(method["gamma"])
        self.sinkhorn_epsilon = float(method["sinkhorn_epsilon"])
        self.sinkhorn_iterations = int(method["sinkhorn_iterations"])
        self.swav_temperature = float(method["swav_temperature"])
        self.reinit_transforms = bool(method["reinit_transforms"])
        self.projection_seed = int(method["projection_seed"])

        self.backbone = self.make_backbone()
        width = self.backbone.feature_dim
        self.nce_head = nn.Linear(width, method["low_dim"])
        self.projector = mlp([width, method["hidden_dim"], method["out_dim"]])
        self.prototypes = nn.Linear(method["out_dim"], self.n_clusters, bias=False)
        self.augment = self.make_augmentation()
        second_jitter = method["view2_jitter"]  # "slightly different views": jitter 0.38 for view 2
        self.augment2 = self.augment if second_jitter is None else self.make_augmentation(jitter=second_jitter)

        self.memory_bank = NCEMemoryBank(method["low_dim"], n_noise=method["nce_k"], temperature=method["nce_t"],
                                         momentum=method["nce_m"], shared_noise=method["nce_shared_noise"])
        self.projections = RandomProjections(method["n_transforms"], method["projection_dim"], method["out_dim"],
                                             seed=self.projection_seed)
        self.population_loss = SwappedPredictionLoss(self.swav_temperature)
        self.consensus_loss = ConsensusLoss(self.swav_temperature, detach_prototypes=method["use_no_grad"])
        self._pending_update: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def label_source_for(cls, config: dict) -> str:
        """``inference.labels``: "kmeans" (k-means on the embedding) or "argmax" (the codes s: "head")."""
        rule = _choice(config.get("inference", {}), "labels", LABEL_RULES, "inference")
        return "head" if rule == "argmax" else "kmeans"

    # --- training -------------------------------------------------------------------------
    def on_fit_start(self, context: TrainingContext) -> None:
        self.memory_bank.reset(context.n_samples)

    def on_epoch_start(self, epoch: int, context: TrainingContext) -> None:
        if self.reinit_transforms:
            self.projections.redraw(self.projection_seed + epoch * self.projections.n_transforms)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """W's rows ← W's rows / ‖·‖ (in place, no gradient), done before every step."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.normalize_prototypes()
        # the views go through the backbone (and its BatchNorm) separately, as in the reference
        features1 = self.backbone(self.augment(batch.images))
        features2 = self.backbone(self.augment2(batch.images))
        heads = [gather(head) for head in (self.projector(features1), self.projector(features2),
                                           self.nce_head(features1))]
        indices = gather(batch.indices)
        with autocast_off(batch.images.device):  # scores, targets and losses in float32
            u1, u2 = (F.normalize(h.float(), dim=1) for h in heads[:2])
            s1, s2 = self.prototypes(u1), self.prototypes(u2)
            q1 = sinkhorn_knopp(s1.detach(), self.sinkhorn_epsilon, self.sinkhorn_iterations)
            q2 = sinkhorn_knopp(s2.detach(), self.sinkhorn_epsilon, self.sinkhorn_iterations)
            e1 = F.normalize(heads[2].float(), dim=1)  # NCE uses view 1 only
            exemplar = self.memory_bank(e1, indices, generator=batch.generator)
            population = self.population_loss(s1, s2, q1, q2)
            consensus = self.consensus_loss(u1, u2, self.prototypes.weight, self.projections, q1, q2)
            loss = self.beta * exemplar + self.alpha * population + self.gamma * consensus
        self._pending_update = (e1.detach(), indices)
        return {"loss": loss, "nce": exemplar.detach(), "population": population.detach(),
                "consensus": consensus.detach()}

    def on_after_step(self, global_step: int, context: TrainingContext) -> None:
        if self._pending_update is not None:
            self.memory_bank.update(*self._pending_update)
            self._pending_update = None

    # --- inference ------------------------------------------------------------------------
    def codes(self, embedding: torch.Tensor) -> torch.Tensor:
        """s = normalise(u)·Wᵀ with W's rows normalised, as at the next training step."""
        return F.linear(embedding, F.normalize(self.prototypes.weight, dim=1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.eval_transform(images))
        if self.embedding == "backbone":
            return features
        if self.embedding == "nce":
            return F.normalize(self.nce_head(features), dim=1)
        projection = F.normalize(self.projector(features), dim=1)
        return projection if self.embedding == "projection" else self.codes(projection)

    def cluster_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """softmax(s / τ_s) of the codes of clean images."""
        projection = F.normalize(self.projector(self.backbone(self.eval_transform(images))), dim=1)
        return F.softmax(self.codes(projection).float() / self.swav_temperature, dim=1)

    def paper_representations(self, images: torch.Tensor) -> torch.Tensor:
        """[u | e | s] of clean images, side by side: the projection u = P(h) *before* normalisation,
        the NCE embedding e and the codes s — what the reference evaluates."""
        features = self.backbone(self.eval_transform(images))
        projection = self.projector(features)
        codes = self.codes(F.normalize(projection, dim=1))
        return torch.cat([projection, F.normalize(self.nce_head(features), dim=1), codes], dim=1)


#: The reference's k-means: scikit-learn's Lloyd with 20 restarts, MiniBatchKMeans above this many samples.
PAPER_KMEANS_FULL_BATCH_LIMIT = 7000
#: The four representations of the reference's evaluation and how each is read.
PAPER_REPRESENTATIONS = {"projection": "k-means on u", "nce": "k-means on e", "codes": "argmax of s",
                         "codes_sinkhorn": "argmax of Sinkhorn(s)"}


def paper_kmeans(features: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """The reference's k-means (Euclidean, scikit-learn): ``KMeans(n_init=20)`` up to 7000 samples,
    ``MiniBatchKMeans(n_init=20, batch_size=6000)`` above; ``random_state=seed``."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(features) > PAPER_KMEANS_FULL_BATCH_LIMIT:
        estimator = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=20, batch_size=6000)
    else:
        estimator = KMeans(n_clusters=n_clusters, random_state=seed, n_init=20)
    return estimator.fit_predict(features)


def evaluate_paper_protocol(estimator: "ConCURL", X, y=None, *, seed: int = 0) -> dict:
    """ConCURL's published evaluation of a fitted ``estimator`` on ``X`` (a dataset with labels).

    The reference reads four representations of the clean images — k-means (:func:`paper_kmeans`)
    on the projection u and on the NCE embedding e, the argmax of the codes s, and the argmax of
    Sinkhorn-balanced codes (ε = 0.05, 3 iterations, over the whole set) — and reports the best;
    here "best" is the highest ACC against the true labels (the reference keeps the best-ACC
    checkpoint of each). **That choice reads the labels**, so the result is not a label-free
    clustering score: it carries ``"selected_with_labels": True`` and the protocol's name, and the
    selected representation's metrics are at the top level beside every representation's.
    """
    if not isinstance(estimator, ConCURL):
        raise ValueError(f"the concurl-paper protocol evaluates a ConCURL estimator, got {type(estimator).__name__}")
    dataset = to_dataset(X, y)
    if dataset.labels is None or not (np.asarray(dataset.labels) >= 0).any():
        raise ValueError(f"the concurl-paper protocol selects its representation with the labels, and dataset "
                         f"'{dataset.name}' has none")
    model = estimator.model_
    n_clusters = model.n_clusters
    with evaluation_mode(model):
        joined = map_images(model.paper_representations, estimator._images(dataset), estimator._batch_size(),
                            estimator.device_)
    options = estimator.config_["method"]
    u, e, s = torch.split(joined, [int(options["out_dim"]), int(options["low_dim"]), n_clusters], dim=1)
    balanced = sinkhorn_knopp(s, float(options["sinkhorn_epsilon"]), int(options["sinkhorn_iterations"]))
    predictions = {"projection": paper_kmeans(u.numpy(), n_clusters, seed),
                   "nce": paper_kmeans(e.numpy(), n_clusters, seed),
                   "codes": s.argmax(dim=1).numpy(), "codes_sinkhorn": balanced.argmax(dim=1).numpy()}
    results = {name: evaluate_clustering(dataset.labels, labels, n_clusters) for name, labels in predictions.items()}
    selected = max(results, key=lambda name: results[name]["acc"])
    return {"protocol": "concurl-paper", "selected_with_labels": True,
            "selection": "the representation with the highest ACC against the true labels (selected with labels)",
            "selected_representation": selected, **results[selected],
            "how_read": dict(PAPER_REPRESENTATIONS), "representations": results}


@register_method("concurl")
class ConCURL(DeepClusterer):
    """ConCURL (Deshmukh et al., "Representation Learning for Clustering via Building Consensus", 2021/22).

    Exemplar (NCE with a memory bank), population (SwAV swapped prediction) and consensus (random
    projections must agree with the Sinkhorn targets) consistencies; labels by k-means on the
    codes s by default. Presets: paper-cifar10, paper-cifar100 (20 superclasses),
    paper-stl10, paper-imagenet10, paper-imagenet-dogs, cpu-fashion-mnist.
    """

    model_class = ConCURLModel
