"""Shared fixtures."""
from __future__ import annotations

import os

import pytest
import torch

from toy_method import blobs  # noqa: F401  (also registers the "toy" method)

torch.set_num_threads(min(2, torch.get_num_threads()))

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: DEEPCLUST_FULL=1 runs the slow real-data tests at full size; CI runs them short.
FULL = os.environ.get("DEEPCLUST_FULL") == "1"


@pytest.fixture
def toy_data():
    return blobs()


def fashion_mnist_available() -> bool:
    return os.path.isdir(FASHION_MNIST_DIR)
