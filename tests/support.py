"""Helpers shared by test modules (import as ``from support import ...``; ``conftest`` is ambiguous)."""
from __future__ import annotations

import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: DEEPCLUST_FULL=1 runs the slow real-data tests at full size; by default (and in CI) they run short.
FULL = os.environ.get("DEEPCLUST_FULL") == "1"


def fashion_mnist_available() -> bool:
    return os.path.isdir(FASHION_MNIST_DIR)


def fashion_mnist_subset(n: int, seed: int = 0):
    """A seeded random subset of ``n`` Fashion-MNIST images (all classes) as an ImageDataset."""
    from deepclust.data import load_dataset

    data = load_dataset("fashion-mnist")
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))
