import pickle

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
    with pytest.raises(ValueError, match="already holds a run"):
        model.fit(data)
    model.set_params(overwrite=True).fit(data)  # an ImageDataset carries its labels: metrics are computed
    assert 0.6 < model.metrics_["acc"] <= 1.0


def test_fitted_estimator_pickles():
    data = load_dataset("digits").sample(300, 0)
    for features, options in (("pixels", {}), ("resnet18", {"image_size": 16})):
        model = deepclust.make("kmeans", n_clusters=10, features=features, n_init=2, device="cpu", **options).fit(data)
        copy = pickle.loads(pickle.dumps(model))
        assert np.array_equal(copy.predict(data.images), model.labels_)
        assert np.allclose(copy.transform(data.images[:5]), model.transform(data.images[:5]))


def test_features_of_a_fitted_run(tmp_path):
    """features=<run folder>: k-means on that estimator's transform (here a k-means run on pixels)."""
    data = load_dataset("digits").sample(300, 0)
    deepclust.make("kmeans", n_clusters=10, n_init=2, device="cpu", out_dir=str(tmp_path / "pixels")).fit(data)
    model = deepclust.make("kmeans", n_clusters=10, features=str(tmp_path / "pixels"), n_init=2, device="cpu",
                           out_dir=str(tmp_path / "on-run")).fit(data)
    assert np.allclose(model.transform(data.images[:4]), data.images[:4].reshape(4, -1) / 255.0, atol=1e-6)
    assert model.metrics_["features"] == str(tmp_path / "pixels") and model.metrics_["acc"] > 0.6
    loaded = load_estimator(tmp_path / "on-run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(data.images), model.predict(data.images))


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


def test_scikit_learn_check_estimator_passes_every_check():
    from support import run_sklearn_checks

    assert run_sklearn_checks(deepclust.make("kmeans", n_clusters=3, n_init=2, device="cpu"), {}) == 50


def test_feature_vectors_are_clustered_as_given_and_score_is_minus_the_mean_squared_distance():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-5, 1, (20, 3)), rng.normal(5, 1, (20, 3))])  # any range: not images
    model = deepclust.make("kmeans", n_clusters=2, device="cpu").fit(X)
    assert model.n_features_in_ == 3 and model.transform(X).shape == (40, 3)
    assert np.allclose(model.transform(X), X, atol=1e-6)  # the rows themselves
    centres = np.asarray(model.cluster_centers_, dtype=np.float64)
    nearest = [min(sum((x - c) ** 2) for c in centres) for x in X[:7]]
    assert model.score(X[:7]) == pytest.approx(-np.mean(nearest), rel=1e-5)
    with pytest.raises(ValueError, match="features='small_cnn' encodes images"):
        deepclust.make("kmeans", n_clusters=2, features="small_cnn", device="cpu").fit(X)


def test_grid_search_without_scoring():
    from sklearn.model_selection import GridSearchCV

    data = load_dataset("digits").sample(200, 0)
    search = GridSearchCV(deepclust.make("kmeans", n_init=1, device="cpu"), {"n_clusters": [2, 8]}, cv=2)
    search.fit(data.images)
    assert search.best_params_ == {"n_clusters": 8}  # more centres: nearer on held-out images too
