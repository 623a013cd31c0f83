import numpy as np
import pytest

import deepclust
from support import FULL, fashion_mnist_available
from deepclust.data import load_dataset
from deepclust.methods import load_estimator


def test_pixels_on_digits_and_roundtrip(tmp_path):
    data = load_dataset("digits")
    model = deepclust.make("kmeans", n_clusters=10, n_init=3, device="cpu", out_dir=str(tmp_path))
    labels = model.fit_predict(data.images)
    assert labels.shape == (len(data),) and model.transform(data.images).shape == (len(data), 64)
    assert np.array_equal(model.predict(data.images), labels)
    loaded = load_estimator(tmp_path / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(data.images), labels)
    model.fit(data)  # an ImageDataset carries its labels: metrics are computed
    assert 0.6 < model.metrics_["acc"] <= 1.0


def test_random_backbone_features():
    data = load_dataset("digits")
    model = deepclust.make("kmeans", n_clusters=10, features="resnet18", image_size=16, n_init=2, device="cpu")
    model.fit(data)
    assert model.transform(data.images[:5]).shape == (5, 512)
    assert model.metrics_["n_clusters_used"] == 10


def test_backbone_too_small_for_images_is_a_clear_error():
    data = load_dataset("digits")  # 8×8 images
    with pytest.raises(ValueError, match="small_cnn"):
        deepclust.make("kmeans", n_clusters=10, features="small_cnn", device="cpu").fit(data)


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_pixels_on_fashion_mnist_matches_published_range():
    """k-means on pixels of Fashion-MNIST: ACC ≈ 0.47–0.55, NMI ≈ 0.51 on all 70,000 images."""
    data = load_dataset("fashion-mnist")
    if not FULL:
        data = data.subset(np.random.default_rng(0).permutation(len(data))[:10_000])
    model = deepclust.make("kmeans", n_clusters=10, n_init=3 if not FULL else 10, device="cpu").fit(data)
    assert 0.42 <= model.metrics_["acc"] <= 0.60
    assert 0.47 <= model.metrics_["nmi"] <= 0.56
