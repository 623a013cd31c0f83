"""The umap-gmm baseline on digits: beats chance, predicts, saves, loads, pickles; on a random
backbone and on a fitted run; a clear error without umap-learn."""
import json
import pickle
import sys

import numpy as np
import pytest

import deepclust
from deepclust.cli import main
from deepclust.data import load_dataset
from deepclust.methods import load_estimator

FAST = {"n_epochs": 50}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").sample(400, 0)


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("umap-gmm")
    model = deepclust.make("umap-gmm", n_clusters=10, device="cpu", out_dir=str(folder), **FAST).fit(digits)
    return model, folder


def test_fits_digits_well_above_chance(fitted, digits):
    model, folder = fitted
    assert model.labels_.shape == (400,) and model.metrics_["acc"] > 0.6  # chance: about 0.1
    assert model.metrics_["method"] == "umap-gmm" and model.metrics_["umap_seconds"] > 0
    assert model.embedding_.shape == (400, 10)
    assert json.loads((folder / "metrics.json").read_text())["acc"] == model.metrics_["acc"]
    assert (folder / "data.json").is_file()


def test_predict_save_load_and_pickle(fitted, digits):
    model, folder = fitted
    predicted = model.predict(digits.images)
    assert np.mean(predicted == model.labels_) > 0.9  # UMAP's transform places seen images near their fit
    assert model.transform(digits.images[:7]).shape == (7, 10)
    loaded = load_estimator(folder / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(digits.images), predicted)
    assert np.array_equal(loaded.labels_, model.labels_) and loaded.get_params() == {**model.get_params(), "device": "cpu"}
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.predict(digits.images), predicted)


def test_random_backbone_and_fitted_run_features(digits, tmp_path):
    model = deepclust.make("umap-gmm", n_clusters=10, features="resnet18", image_size=16, device="cpu", **FAST)
    assert model.fit(digits).metrics_["n_clusters_used"] == 10
    deepclust.make("kmeans", n_clusters=10, n_init=1, device="cpu", out_dir=str(tmp_path / "km")).fit(digits)
    on_run = deepclust.make("umap-gmm", n_clusters=10, features=str(tmp_path / "km"), device="cpu", **FAST).fit(digits)
    assert on_run.metrics_["acc"] > 0.6  # the k-means run's transform is the pixels


def test_cli_fit_and_evaluate(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--method", "umap-gmm", "--dataset", "digits", "--subset", "300", "--param", "n_epochs=30",
                 "--param", "n_components=5", "--out", str(run), "--device", "cpu"]) == 0
    assert json.loads((run / "metrics.json").read_text())["acc"] > 0.5
    assert main(["evaluate", "--run", str(run), "--dataset", "digits", "--subset", "300", "--device", "cpu"]) == 0
    assert "acc" in capsys.readouterr().out.lower()


def test_without_umap_learn_the_error_names_the_extra(digits, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ImportError, match=r"pip install 'deepclust\[baselines\]'"):
        deepclust.make("umap-gmm", n_clusters=10, device="cpu").fit(digits)
    assert main(["fit", "--method", "umap-gmm", "--dataset", "digits", "--out", str(tmp_path / "x"),
                 "--device", "cpu"]) == 2
    assert "deepclust[baselines]" in capsys.readouterr().err


#: umap-learn places a batch of new points by optimising their coordinates together, so a point's
#: transform depends on the other points of the batch and their order.
UMAP_BATCH = "umap-learn's transform of new points depends on the rest of the batch and its order"


@pytest.mark.slow  # about 50 UMAP fits: 10-30 s
def test_scikit_learn_check_estimator():
    from support import run_sklearn_checks

    estimator = deepclust.make("umap-gmm", n_clusters=3, n_neighbors=5, n_components=2, n_epochs=10, device="cpu")
    expected = {"check_methods_sample_order_invariance": UMAP_BATCH, "check_methods_subset_invariance": UMAP_BATCH}
    assert run_sklearn_checks(estimator, expected) == 48


def test_score_is_the_mixtures_mean_log_likelihood(fitted, digits):
    model, _ = fitted
    images = digits.images[:50]
    assert model.score(images) == pytest.approx(model.clustering_.gmm_.score(model.transform(images)), rel=1e-5)
