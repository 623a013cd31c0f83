import math

import numpy as np
import pytest
import torch

import deepclust.metrics as dm
from deepclust.evaluation import (
    adjusted_rand_index,
    cluster_accuracy,
    collapse_statistics,
    evaluate_clustering,
    hungarian_mapping,
    kl_to_prior,
    normalized_mutual_info,
)
from deepclust.evaluation.metrics import format_metrics


def test_reexport_module():
    for name in dm.__all__:
        assert getattr(dm, name) is globals()[name]


def test_perfect_with_permuted_labels():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = {0: 2, 1: 0, 2: 1}
    p = np.array([perm[v] for v in y])
    assert cluster_accuracy(y, p) == 1.0
    assert normalized_mutual_info(y, p) == pytest.approx(1.0)
    assert adjusted_rand_index(y, p) == pytest.approx(1.0)
    assert hungarian_mapping(y, p) == {2: 0, 0: 1, 1: 2}


def test_accuracy_hand_computed_2x3_contingency():
    # contingency (cluster x class): c0 = [5, 4, 0], c1 = [4, 0, 1]
    # majority vote would give 9/14; the one-to-one optimum is c0->1 (4) + c1->0 (4) = 8/14.
    y_true = [0] * 5 + [1] * 4 + [0] * 4 + [2] * 1
    y_pred = [0] * 9 + [1] * 5
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(8 / 14)
    assert hungarian_mapping(y_true, y_pred) == {0: 1, 1: 0}


def test_more_clusters_than_classes():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 1, 2, 2]  # one of clusters 0/1 is left unmatched -> wrong
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(3 / 4)
    mapping = hungarian_mapping(y_true, y_pred)
    assert len(mapping) == 2 and mapping[2] == 1 and set(mapping.values()) == {0, 1}


def test_fewer_clusters_than_classes():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 1]  # one of classes 1/2 is unmatched -> wrong
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_arbitrary_label_values_and_tensors():
    y_true = torch.tensor([10, 10, 20, 20, 20])
    y_pred = torch.tensor([7, 7, 5, 5, 7])
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 5)
    assert hungarian_mapping(y_true, y_pred) == {7: 10, 5: 20}


def test_nmi_ari_hand_values_independent():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 1, 0, 1]
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(0.0, abs=1e-12)
    # sum C(n_ij,2)=0, expected index = 2*2/6, max index = 2 -> ARI = -(2/3)/(4/3) = -0.5
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(-0.5)


def test_collapse_all_in_one():
    s = collapse_statistics(np.zeros(10, dtype=int), n_clusters=4)
    assert s["n_clusters_used"] == 1
    assert s["largest_cluster_share"] == 1.0
    assert s["cluster_size_entropy"] == pytest.approx(0.0)
    assert s["normalized_size_entropy"] == pytest.approx(0.0)
    # sizes [10,0,0,0]: std = sqrt(((7.5)^2 + 3*(2.5)^2)/4) = sqrt(18.75), mean 2.5 -> sqrt(3)
    assert s["cluster_size_cv"] == pytest.approx(math.sqrt(3))


def test_collapse_uniform():
    s = collapse_statistics(np.repeat(np.arange(5), 3), n_clusters=5)
    assert s["n_clusters_used"] == 5
    assert s["largest_cluster_share"] == pytest.approx(0.2)
    assert s["cluster_size_entropy"] == pytest.approx(math.log(5))
    assert s["normalized_size_entropy"] == pytest.approx(1.0)
    assert s["cluster_size_cv"] == pytest.approx(0.0)


def test_collapse_partial_hand_value():
    # sizes [2, 1, 1, 0]: p = [.5,.25,.25,0]
    s = collapse_statistics([3, 3, 8, 9], n_clusters=4)
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert s["n_clusters_used"] == 3
    assert s["largest_cluster_share"] == 0.5
    assert s["cluster_size_entropy"] == pytest.approx(h)
    assert s["normalized_size_entropy"] == pytest.approx(h / math.log(4))
    assert s["cluster_size_cv"] == pytest.approx(np.std([2, 1, 1, 0]) / 1.0)


def test_collapse_too_many_labels():
    with pytest.raises(ValueError, match="n_clusters=2"):
        collapse_statistics([0, 1, 2], n_clusters=2)


def test_evaluate_excludes_unknown_labels():
    y_true = [0, 0, 1, 1, -1, -1]
    y_pred = [1, 1, 0, 0, 0, 1]
    r = evaluate_clustering(y_true, y_pred, n_clusters=3)
    assert r["acc"] == 1.0
    assert r["nmi"] == pytest.approx(1.0)
    assert r["ari"] == pytest.approx(1.0)
    # collapse statistics use every prediction: sizes [3, 3, 0]
    assert r["n_clusters_used"] == 2
    assert r["largest_cluster_share"] == pytest.approx(0.5)
    assert r["normalized_size_entropy"] == pytest.approx(math.log(2) / math.log(3))


def test_evaluate_without_labels():
    r = evaluate_clustering(None, [0, 1, 1, 1])
    assert "acc" not in r and "nmi" not in r and "ari" not in r
    assert r["n_clusters_used"] == 2 and r["largest_cluster_share"] == 0.75


def test_evaluate_all_unknown_gives_nan():
    r = evaluate_clustering([-1, -1], [0, 1])
    assert math.isnan(r["acc"]) and math.isnan(r["nmi"]) and math.isnan(r["ari"])


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0, 1, 2], [0, 1], r"y_true shape \(3,\).*y_pred shape \(2,\)"),
        ([], [], r"y_true is empty"),
        ([[0, 1]], [[0, 1]], r"y_true must be a 1-D.*\(1, 2\)"),
        ([0, 1], [0.5, 1.0], r"y_pred must contain integer labels.*float64"),
        (["a", "b"], [0, 1], r"y_true must contain integer labels"),
    ],
)
def test_validation(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        cluster_accuracy(y_true, y_pred)


def test_integral_floats_accepted():
    assert cluster_accuracy([0.0, 1.0], np.array([1.0, 0.0])) == 1.0


def test_format_metrics_line():
    metrics = {"acc": 0.5, "nmi": 0.123456, "ari": -0.01, "n_clusters_used": 7, "seconds": 3.0}
    assert format_metrics(metrics, "run: ") == "run: ACC 0.5000  NMI 0.1235  ARI -0.0100  clusters used 7"
    assert format_metrics({"n_clusters_used": 2}) == "clusters used 2"


# --- KL*, HardReg's collapse measure against a prior (docs/methods/hardreg.md) ---------------------
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


def test_kl_to_prior_errors():
    with pytest.raises(ValueError, match="prior must hold n_clusters=2"):
        kl_to_prior([0, 1], 2, prior=[1, 1, 1])
    with pytest.raises(ValueError, match="labels must be 0..1"):
        kl_to_prior([0, 5], 2, prior=[1, 1])
    with pytest.raises(ValueError, match="distinct cluster labels"):
        kl_to_prior([0, 1, 2], 2)
