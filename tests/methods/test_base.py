import numpy as np
import pytest
from sklearn.base import clone

import deepclust
from toy_method import Toy
from deepclust.methods import load_estimator


def test_sklearn_conventions(tmp_path, toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, max_epochs=2, seed=0)
    assert clone(estimator).get_params() == estimator.get_params()
    predicted = estimator.fit_predict(images)
    assert predicted.shape == (len(images),) and np.array_equal(predicted, estimator.labels_)
    assert np.array_equal(estimator.predict(images), estimator.labels_)
    assert estimator.transform(images).shape == (len(images), 16)
    proba = estimator.predict_proba(images)
    assert proba.shape == (len(images), 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    estimator.save(tmp_path / "m.pt")
    loaded = load_estimator(tmp_path / "m.pt", device="cpu")
    assert isinstance(loaded, Toy)
    assert np.array_equal(loaded.predict(images), estimator.labels_)


def test_accepts_hw_arrays_and_float_images(toy_data):
    images, _ = toy_data
    labels_uint8 = Toy(n_clusters=3, max_epochs=1).fit_predict(images[:, 0])
    labels_float = Toy(n_clusters=3, max_epochs=1).fit_predict(images.astype(np.float32) / 255)
    assert np.array_equal(labels_uint8, labels_float)


@pytest.mark.parametrize("k, message", [(1, "at least 2"), (10_000, "larger than the number of samples"),
                                        (2.5, "integer")])
def test_n_clusters_out_of_range(toy_data, k, message):
    with pytest.raises(ValueError, match=message):
        Toy(n_clusters=k).fit(toy_data[0])


def test_unfitted_and_wrong_channels(toy_data):
    images, _ = toy_data
    with pytest.raises(RuntimeError, match="not fitted"):
        Toy().predict(images)
    estimator = Toy(n_clusters=3, max_epochs=1).fit(images)
    with pytest.raises(ValueError, match="1-channel"):
        estimator.predict(np.zeros((4, 3, 8, 8), dtype=np.uint8))


def test_make_and_unknown_names():
    assert isinstance(deepclust.make("toy", n_clusters=4), Toy)
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: .*kmeans"):
        deepclust.make("nope")
    with pytest.raises(ValueError, match="unknown configuration key 'training.epochz'"):
        Toy(config={"training": {"epochz": 1}}).fit(np.zeros((20, 8, 8), dtype=np.uint8))


def test_unwritable_out_dir(tmp_path, toy_data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="not writable"):
        Toy(n_clusters=3, out_dir=str(blocker / "run")).fit(toy_data[0])
