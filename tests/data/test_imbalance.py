"""HardReg's class-imbalance protocol (deepclust.data.imbalance) and load_dataset(..., imbalance=)."""
import numpy as np
import pytest

from deepclust.cli import _load_data, build_parser
from deepclust.data import from_arrays, load_dataset
from deepclust.data.imbalance import apply_imbalance, imbalance_prior, imbalance_probabilities


def test_probabilities_for_ten_classes_by_hand():
    assert np.allclose(imbalance_probabilities(1, 10), [1, 1, 1, 1, 1, 1, .95, .9, .85, .8])
    assert np.allclose(imbalance_probabilities(2, 10), [1, .95, .9, .85, .8, .75, .7, .65, .6, .55])
    assert np.allclose(imbalance_probabilities(3, 10), [1, .9, .8, .7, .6, .5, .4, .3, .2, .1])
    assert np.array_equal(imbalance_probabilities(0, 4), np.ones(4))


def test_odd_class_count_and_prior():
    p = imbalance_probabilities(1, 5)                    # ceil(5/2) = 3 ones, then 1 - 0.2*linspace(0, 1, 2)
    assert np.allclose(p, [1, 1, 1, 1, 0.8])
    prior = imbalance_prior(3, 4)
    assert np.allclose(prior, np.array([1, .75, .5, .25]) / 2.5) and prior.sum() == pytest.approx(1)


@pytest.mark.parametrize("level, n_classes", [(4, 10), (-1, 10), (True, 10), (1, 1)])
def test_bad_levels(level, n_classes):
    with pytest.raises(ValueError, match="imbalance"):
        imbalance_probabilities(level, n_classes)


def test_subsampling_follows_the_probabilities_and_the_seed():
    labels = np.repeat(np.arange(10), 4000)
    dataset = from_arrays(np.zeros((len(labels), 2, 2), dtype=np.uint8), labels)
    kept = apply_imbalance(dataset, 3, seed=1)
    fractions = np.bincount(kept.labels, minlength=10) / 4000
    assert np.allclose(fractions, imbalance_probabilities(3, 10), atol=0.03)
    again = apply_imbalance(dataset, 3, seed=1)
    assert np.array_equal(kept.labels, again.labels)
    assert not np.array_equal(kept.labels, apply_imbalance(dataset, 3, seed=2).labels)
    assert kept.n_classes == 10 and apply_imbalance(dataset, 0) is dataset
    assert kept.source == {"kind": "arrays", "dataset": None, "imbalance": 3, "imbalance_seed": 1}


def test_unlabelled_data_cannot_be_imbalanced():
    with pytest.raises(ValueError, match="at least 2 classes"):
        apply_imbalance(from_arrays(np.zeros((4, 2, 2), dtype=np.uint8)), 1)


def test_load_dataset_option_works_for_any_dataset():
    full = load_dataset("digits")
    reduced = load_dataset("digits", imbalance=3, seed=0)
    assert len(reduced) < len(full) and reduced.shape == full.shape
    counts = np.bincount(reduced.labels, minlength=10)
    assert counts[0] > counts[9]
    assert np.array_equal(reduced.labels, load_dataset("digits", imbalance=3, seed=0).labels)


def test_cli_imbalance_argument():
    args = build_parser().parse_args(["fit", "--method", "hardreg", "--dataset", "digits", "--imbalance", "2"])
    assert len(_load_data(args, seed=0)) < len(load_dataset("digits"))
    args = build_parser().parse_args(["fit", "--method", "hardreg", "--dataset", "digits", "--imbalance", "2",
                                      "--subset", "300"])
    loaded = _load_data(args, seed=4)  # both draws seeded with --seed
    pool = load_dataset("digits", imbalance=2, seed=4)
    expected = np.sort(np.random.default_rng(4).permutation(len(pool))[:300])
    np.testing.assert_array_equal(loaded.images, pool.images[expected])
    assert (loaded.source["imbalance_seed"], loaded.source["subset"], loaded.source["subset_seed"]) == (4, 300, 4)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "--method", "hardreg", "--dataset", "digits", "--imbalance", "5"])
