"""The feature encoder shared by the shallow baselines: pixels, a random backbone, a fitted run."""
import pickle

import numpy as np
import pytest
import torch

import deepclust
from deepclust.data import load_dataset
from deepclust.methods.features import FeatureEncoder


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(load_dataset("digits").images[:50])


def test_pixels_are_the_flattened_images_in_unit_range(images):
    rows = FeatureEncoder("pixels", (1, 8, 8))(images)
    assert rows.dtype == torch.float32 and rows.shape == (50, 64)
    assert torch.allclose(rows, images.reshape(50, -1).float() / 255)
    assert FeatureEncoder("pixels", (1, 8, 8), image_size=16)(images).shape == (50, 256)


def test_random_backbone_is_seeded_and_pickles(images):
    first = FeatureEncoder("resnet18", (1, 8, 8), image_size=16, seed=3)
    again = FeatureEncoder("resnet18", (1, 8, 8), image_size=16, seed=3)
    assert torch.equal(first(images), again(images)) and first(images).shape == (50, 512)
    assert torch.equal(pickle.loads(pickle.dumps(first))(images), first(images))


def test_a_fitted_run_gives_its_transform(images, tmp_path):
    data = load_dataset("digits").sample(200, 0)
    fitted = deepclust.make("kmeans", n_clusters=5, n_init=1, device="cpu", out_dir=str(tmp_path)).fit(data)
    for path in (tmp_path, tmp_path / "model.pt"):
        rows = FeatureEncoder(str(path), (1, 8, 8))(images)
        assert np.allclose(rows.numpy(), fitted.transform(images.numpy()))
    with pytest.raises(ValueError, match="fitted on 1-channel images"):
        FeatureEncoder(str(tmp_path), (3, 8, 8))


def test_unknown_features_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"features must be 'pixels', a backbone name \(.*small_cnn.*\) or a run"):
        FeatureEncoder(str(tmp_path / "nowhere"), (1, 8, 8))
    with pytest.raises(ValueError, match="small_cnn"):  # the backbone's own check: 8x8 is too small
        FeatureEncoder("small_cnn", (1, 8, 8))
