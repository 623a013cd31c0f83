"""The class-imbalance protocol of HardReg (Mahon & Lukasiewicz, AAAI 2024, imbalanced experiments).

Each sample of class c is kept independently with probability p_c; with C classes:

- imbalance 1: the first ceil(C/2) classes p = 1, the last floor(C/2) p = 1 − 0.2·linspace(0, 1, floor(C/2));
- imbalance 2: p = 1 − 0.5·linspace(0, 1 − 1/C, C);
- imbalance 3: p = 1 − linspace(0, 1 − 1/C, C).

For C = 10 these are (1,1,1,1,1,1,.95,.9,.85,.8), (1,.95,…,.55) and (1,.9,…,.1). The prior the
method is given is π = p / Σ p (:func:`imbalance_prior`).

``load_dataset(name, imbalance=k, seed=s)`` applies it to any labelled dataset.
"""
from __future__ import annotations

import numpy as np

from .base import ImageDataset

__all__ = ["IMBALANCE_LEVELS", "imbalance_probabilities", "imbalance_prior", "apply_imbalance"]

IMBALANCE_LEVELS = (0, 1, 2, 3)


def _check(level, n_classes) -> tuple[int, int]:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in IMBALANCE_LEVELS:
        raise ValueError(f"imbalance must be one of {IMBALANCE_LEVELS} (0 = none), got {level!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"imbalance needs at least 2 classes, got n_classes={n_classes!r}")
    return int(level), int(n_classes)


def imbalance_probabilities(level: int, n_classes: int) -> np.ndarray:
    """Keep probability p_c of each class c = 0..C−1 for imbalance ``level`` (0 = all ones)."""
    level, c = _check(level, n_classes)
    if level == 0:
        return np.ones(c)
    if level == 1:
        second = c // 2
        return np.concatenate([np.ones(c - second), 1.0 - 0.2 * np.linspace(0.0, 1.0, second)])
    scale = 0.5 if level == 2 else 1.0
    return 1.0 - scale * np.linspace(0.0, 1.0 - 1.0 / c, c)


def imbalance_prior(level: int, n_classes: int) -> np.ndarray:
    """The cluster prior π = p / Σ p matching imbalance ``level`` (uniform for level 0)."""
    p = imbalance_probabilities(level, n_classes)
    return p / p.sum()


def apply_imbalance(dataset: ImageDataset, level: int, seed: int = 0) -> ImageDataset:
    """Subsample ``dataset``: each image of class c is kept with probability p_c (seeded)."""
    level, n_classes = _check(level, dataset.n_classes if dataset.labels is not None else 0)
    if level == 0:
        return dataset
    labels = dataset.labels
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"imbalance needs labels in 0..{n_classes - 1} for dataset {dataset.name!r}; "
                         f"found labels in [{labels.min()}, {labels.max()}]")
    keep = np.random.default_rng(seed).random(len(labels)) < imbalance_probabilities(level, n_classes)[labels]
    return dataset.subset(np.flatnonzero(keep), draw={"imbalance": level, "imbalance_seed": int(seed)})
