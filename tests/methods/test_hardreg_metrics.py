"""KL*, HardReg's collapse measure against a prior (deepclust.evaluation.kl_to_prior)."""
import math

import pytest

from deepclust.evaluation import collapse_statistics, evaluate_clustering, kl_to_prior


def test_uniform_prior_by_hand():
    labels = [0, 0, 0, 1]
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl_to_prior(labels, 2) == pytest.approx(expected)
    assert kl_to_prior([7, 7, 7, 9], 2) == pytest.approx(expected)          # label values do not matter
    assert kl_to_prior([0, 1, 2, 3], 4) == pytest.approx(0.0)
    assert kl_to_prior([1, 1, 1], 4) == pytest.approx(math.log(4))         # collapse


def test_given_prior_is_matched_by_index():
    assert kl_to_prior([0, 0, 0, 1], 2, prior=[3, 1]) == pytest.approx(0.0)
    swapped = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert kl_to_prior([0, 0, 0, 1], 2, prior=[1, 3]) == pytest.approx(swapped)
    assert kl_to_prior([0, 0], 3, prior=[0.5, 0.25, 0.25]) == pytest.approx(math.log(2))  # empty clusters: 0 log 0 = 0


def test_reported_with_the_other_statistics():
    assert collapse_statistics([0, 0, 0, 1], 2)["kl_star"] == pytest.approx(kl_to_prior([0, 0, 0, 1], 2))
    metrics = evaluate_clustering([0, 0, 1, 1], [0, 0, 0, 1], 2, prior=[3, 1])
    assert metrics["kl_star"] == pytest.approx(0.0) and "acc" in metrics


def test_errors():
    with pytest.raises(ValueError, match="prior must hold n_clusters=2"):
        kl_to_prior([0, 1], 2, prior=[1, 1, 1])
    with pytest.raises(ValueError, match="labels must be 0..1"):
        kl_to_prior([0, 5], 2, prior=[1, 1])
    with pytest.raises(ValueError, match="distinct cluster labels"):
        kl_to_prior([0, 1, 2], 2)
