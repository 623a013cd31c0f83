"""Helpers shared by test modules (import as ``from support import ...``; ``conftest`` is ambiguous)."""
from __future__ import annotations

import math
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: DEEPCLUST_FULL=1 runs the slow real-data tests at full size; by default (and in CI) they run short.
FULL = os.environ.get("DEEPCLUST_FULL") == "1"


def naive_sinkhorn(scores, eps, n_iters):
    """SwAV's Sinkhorn-Knopp transcribed with python floats, no stabilisation: B×K lists in and out."""
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[i][j] / eps) for i in range(b)] for j in range(k)]  # K x B
    total = sum(sum(row) for row in q)
    q = [[v / total for v in row] for row in q]
    for _ in range(n_iters):
        for j in range(k):  # each cluster (row) -> mass 1/K
            r = sum(q[j])
            q[j] = [v / r / k for v in q[j]]
        for i in range(b):  # each sample (column) -> mass 1/B
            c = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / c / b
    return [[q[j][i] * b for j in range(k)] for i in range(b)]  # B x K


def fashion_mnist_available() -> bool:
    return os.path.isdir(FASHION_MNIST_DIR)


def fashion_mnist_subset(n: int, seed: int = 0):
    """A seeded random subset of ``n`` Fashion-MNIST images (all classes) as an ImageDataset."""
    from deepclust.data import load_dataset

    data = load_dataset("fashion-mnist")
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))
