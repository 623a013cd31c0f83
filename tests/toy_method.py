"""A tiny toy method that exercises the engine and estimator API without any real method."""
from __future__ import annotations

import copy
import os
import signal
import time

import numpy as np
import torch

from deepclust.engine.model import ClusteringModel, EpochPass
from deepclust.heads import cluster_head, mlp
from deepclust.losses import ClusterContrastiveLoss
from deepclust.methods import DeepClusterer, register_method

TOY_CONFIG = {
    "backbone": {"name": "mlp"},
    "augmentation": {"name": "none", "image_size": None},
    "optimizer": {"name": "adam", "lr": 1e-2, "weight_decay": 0.0},
    "schedule": {"name": "cosine", "warmup_epochs": 1},
    "training": {"epochs": 3, "batch_size": 16, "drop_last": True, "eval_every": 1, "eval_batch_size": 64,
                 "log_every": 1, "checkpoint_every_minutes": 0.0, "amp": True, "grad_clip": None,
                 "skip_nonfinite": False, "max_minutes": None},
    "method": {"noise": 0.1, "stop_at_step": None, "step_sleep": 0.0, "passes": None},
}


class ToyModel(ClusteringModel):
    """Flattened pixels → MLP → softmax head; two noisy copies as views; cluster contrastive loss.

    ``method.passes``: None (one pass over everything) or a list of ``[part name, terms]``, one
    pass per dataset part; ``seen`` records (pass name, terms, indices) of every training batch.
    """

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        features = int(np.prod(input_shape))
        self.encoder = mlp([features, 32, 16])
        self.head = cluster_head([16, n_clusters])
        self.loss = ClusterContrastiveLoss()
        self.noise = config["method"]["noise"]
        self.seen = []

    def epoch_passes(self, n_samples, parts):
        if self.config["method"]["passes"] is None:
            return super().epoch_passes(n_samples, parts)
        return [EpochPass(name, parts[name], terms) for name, terms in self.config["method"]["passes"]]

    def training_step(self, batch):
        self.seen.append((batch.pass_name, batch.terms, batch.indices.tolist()))
        x = batch.images.flatten(1)
        view1 = x + self.noise * torch.randn_like(x)
        view2 = x + self.noise * torch.randn_like(x)
        loss = self.loss(self.head(self.encoder(view1)), self.head(self.encoder(view2)))
        return {"loss": loss, "cluster": loss}

    def on_after_step(self, global_step, context):
        time.sleep(self.config["method"]["step_sleep"])
        stop_at = self.config["method"]["stop_at_step"]
        if stop_at is not None and global_step + 1 == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    def embed(self, images):
        return self.encoder(self.eval_transform(images).flatten(1))

    def cluster_probabilities(self, images):
        return self.head(self.embed(images))


@register_method("toy")
class Toy(DeepClusterer):
    """A toy method used by the engine tests."""

    model_class = ToyModel

    @classmethod
    def presets(cls):
        return []

    @classmethod
    def preset_config(cls, preset):
        return copy.deepcopy(TOY_CONFIG)


def blobs(n_per_class: int = 32, n_classes: int = 3, size: int = 8, seed: int = 0):
    """Tiny grey images: each class is a bright square at its own position, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(n_per_class * n_classes, 1, size, size)).astype(np.uint8)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    for index, label in enumerate(labels):
        offset = 2 * label
        images[index, 0, offset:offset + 3, offset:offset + 3] = 230
    return images, labels
