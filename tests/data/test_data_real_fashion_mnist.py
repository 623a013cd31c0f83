"""The real Fashion-MNIST from the Debian package dataset-fashion-mnist (skipped if absent)."""
import os

import numpy as np
import pytest

from deepclust.data import load_dataset

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SYSTEM_DIR, "train-images-idx3-ubyte.gz")),
    reason="dataset-fashion-mnist is not installed")


def test_real_fashion_mnist():
    al = load_dataset("fashion-mnist")  # found through the system folder
    assert al.images.shape == (70000, 1, 28, 28) and al.images.dtype == np.uint8
    assert al.labels.shape == (70000,) and al.labels.dtype == np.int64
    assert np.bincount(al.labels).tolist() == [7000] * 10
    assert al.mean[0] == pytest.approx(0.286, abs=2e-3)   # published: 0.2860
    assert al.std[0] == pytest.approx(0.353, abs=2e-3)    # published: 0.3530
    tr = load_dataset("fashion-mnist", root=SYSTEM_DIR, split="train")
    te = load_dataset("fashion-mnist", split="test")
    assert tr.images.shape == (60000, 1, 28, 28) and te.images.shape == (10000, 1, 28, 28)
    assert np.bincount(tr.labels).tolist() == [6000] * 10
    assert np.bincount(te.labels).tolist() == [1000] * 10
    np.testing.assert_array_equal(al.images[60000:], te.images)
