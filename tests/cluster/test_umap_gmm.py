"""UMAP + GMM on feature rows: separated groups come back as clusters, new rows are placed, the
options are checked, the fitted object pickles, and a missing umap-learn names the extra."""
import pickle
import sys

import numpy as np
import pytest

from deepclust.cluster.umap_gmm import INSTALL_HINT, OPTIONS, MissingExtraError, UmapGmm, import_umap
from deepclust.evaluation import evaluate_clustering

FAST = {"n_components": 2, "n_neighbors": 10, "n_epochs": 50}


def groups(n_per_group=40, n_groups=3, dim=12, seed=0):
    """Gaussian blobs far apart in ``dim`` dimensions, and their group of each row."""
    rng = np.random.default_rng(seed)
    centres = 20.0 * np.eye(dim)[:n_groups]
    labels = np.repeat(np.arange(n_groups), n_per_group)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


@pytest.fixture(scope="module")
def fitted():
    rows, labels = groups()
    clustering = UmapGmm(3, seed=0, **FAST)
    return clustering, clustering.fit_predict(rows), rows, labels


def test_separated_groups_are_found_and_new_rows_placed(fitted):
    clustering, predicted, rows, labels = fitted
    assert predicted.shape == (len(rows),) and predicted.dtype == np.int64
    assert evaluate_clustering(labels, predicted, 3)["acc"] == 1.0
    assert clustering.embedding_.shape == (len(rows), 2) and clustering.umap_seconds_ > 0
    new_rows, new_labels = groups(n_per_group=5, seed=1)
    assert evaluate_clustering(new_labels, clustering.predict(new_rows), 3)["acc"] == 1.0
    assert clustering.transform(new_rows).shape == (15, 2)


def test_fitted_clustering_pickles(fitted):
    clustering, _, rows, _ = fitted
    copy = pickle.loads(pickle.dumps(clustering))
    assert np.array_equal(copy.predict(rows[:20]), clustering.predict(rows[:20]))
    assert copy.options() == clustering.options()


def test_same_seed_same_labels(fitted):
    _, predicted, rows, _ = fitted
    assert np.array_equal(UmapGmm(3, seed=0, **FAST).fit_predict(rows), predicted)


def test_defaults_are_n2d_fashion_mnist_settings():
    assert OPTIONS == {"n_components": 10, "n_neighbors": 20, "min_dist": 0.0, "metric": "euclidean",
                       "n_epochs": None, "covariance_type": "full", "n_init": 1, "gmm_max_iter": 100}
    assert UmapGmm(10).options() == OPTIONS


@pytest.mark.parametrize("options, message", [
    ({"n_neighbours": 5}, "unknown UMAP\\+GMM option\\(s\\) n_neighbours"),
    ({"n_components": 0}, "n_components must be an integer >= 1"),
    ({"n_neighbors": 1}, "n_neighbors must be an integer >= 2"),
    ({"min_dist": -0.1}, "min_dist must be a number >= 0"),
    ({"covariance_type": "round"}, "covariance_type must be one of full, tied, diag, spherical"),
    ({"n_epochs": 2.5}, "n_epochs must be an integer"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        UmapGmm(3, **options)


def test_bad_rows_are_clear_errors(fitted):
    clustering, _, _, _ = fitted
    with pytest.raises(ValueError, match=r"needs more rows than n_neighbors=10"):
        UmapGmm(3, **FAST).fit_predict(np.zeros((8, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"finite \(N, D\) array"):
        UmapGmm(3, **FAST).fit_predict(np.zeros(8))
    with pytest.raises(ValueError, match="fitted on 12 features per row, got 5"):
        clustering.predict(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="not fitted yet"):
        UmapGmm(3).predict(np.zeros((2, 5)))


def test_missing_umap_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'deepclust\[baselines\]'"):
        import_umap()
    with pytest.raises(ImportError, match="umap-learn"):
        UmapGmm(3, **FAST).fit_predict(groups()[0])
    assert "deepclust[baselines]" in INSTALL_HINT
