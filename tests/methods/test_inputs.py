"""What the estimators take as X (deepclust.methods.inputs): images or feature vectors, read-only
arrays, the scikit-learn tags."""
import warnings

import numpy as np
import pytest

from deepclust.data import ImageDataset, from_arrays
from deepclust.methods import HardReg, KMeansBaseline
from deepclust.methods.inputs import as_tensor, is_feature_vectors, vector_dataset, vector_samples


@pytest.mark.parametrize("X, vectors", [
    (np.zeros((5, 3)), True), ([[1.0, 2.0], [3.0, 4.0]], True),
    (np.zeros(5), True), (np.zeros((5, 8, 8)), False), (np.zeros((5, 1, 8, 8)), False), ("digits", False),
    (from_arrays(np.zeros((2, 8, 8), np.uint8)), False), ([[1.0], [2.0, 3.0]], True),
])
def test_what_counts_as_feature_vectors(X, vectors):
    assert is_feature_vectors(X) is vectors


def test_vectors_are_scaled_per_feature_between_the_fitted_bounds():
    low, high = np.array([0.0, -2.0, 5.0]), np.array([10.0, 2.0, 5.0])
    vectors = np.array([[0.0, -2.0, 5.0], [5.0, 0.0, 5.0], [10.0, 2.0, 5.0], [20.0, -9.0, 7.0]])
    samples = vector_samples(vectors, (low, high))
    assert samples.dtype == np.uint8 and samples.shape == (4, 3, 1, 1)
    # low -> 0, half way -> round(127.5) = 128, high -> 255, beyond the bounds clipped (a constant
    # feature: its value -> 0, above it -> 255)
    assert samples[:, :, 0, 0].tolist() == [[0, 0, 0], [128, 128, 0], [255, 255, 0], [255, 0, 255]]
    dataset = vector_dataset(vectors, ["a", "b", "a", "b"], (low, high))
    assert isinstance(dataset, ImageDataset) and dataset.labels.tolist() == [0, 1, 0, 1]


def test_only_read_only_arrays_are_copied():
    writable = np.arange(6, dtype=np.float32)
    assert np.shares_memory(as_tensor(writable).numpy(), writable)
    frozen = np.arange(6, dtype=np.float32)
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy would warn: the array is not writable
        tensor = as_tensor(frozen)
    assert not np.shares_memory(tensor.numpy(), frozen) and tensor.tolist() == frozen.tolist()


def test_tags():
    tags = HardReg(device="cpu").__sklearn_tags__()
    assert tags.input_tags.two_d_array and tags.input_tags.three_d_array
    assert tags.transformer_tags.preserves_dtype == ["float32"] and not tags.non_deterministic
    assert tags.estimator_type == "clusterer" and not tags.target_tags.required
    # a device this machine lacks (fit reports it) does not break the tags
    assert KMeansBaseline(device="no-such-device").__sklearn_tags__().non_deterministic is False
