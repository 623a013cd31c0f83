"""kNN and linear-probe accuracy of embeddings against naive computations written here."""
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from deepclust.evaluation.embedding_quality import (
    KNN_NEIGHBOURS, PROTOCOL, embedding_quality, knn_accuracy, linear_probe_accuracy, probe_split,
)


def naive_knn_accuracy(points, labels, k):
    """For each point, the k most cosine-similar other points (a loop), one vote each, ties to the
    lowest label."""
    points = [[float(v) for v in row] for row in points]
    norms = [math.sqrt(sum(v * v for v in row)) for row in points]
    correct = 0
    for i, row in enumerate(points):
        similarities = []
        for j, other in enumerate(points):
            if j != i:
                similarities.append((sum(a * b for a, b in zip(row, other)) / (norms[i] * norms[j]), j))
        similarities.sort(key=lambda pair: -pair[0])
        votes = {}
        for _, j in similarities[:k]:
            votes[int(labels[j])] = votes.get(int(labels[j]), 0) + 1
        top = max(votes.values())
        predicted = min(label for label, count in votes.items() if count == top)
        correct += predicted == int(labels[i])
    return correct / len(points)


def noisy_classes(n=50, dim=6, n_classes=3, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    return (np.eye(dim)[labels] * 2 + noise * rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.mark.parametrize("k", [1, 4, 20])
def test_knn_matches_a_naive_double_loop(k):
    points, labels = noisy_classes()
    expected = naive_knn_accuracy(points, labels, k)
    assert 0 < expected < 1  # neither trivial nor perfect: the votes matter
    assert knn_accuracy(points, labels, k) == pytest.approx(expected)
    assert knn_accuracy(points, labels, k, chunk_size=7) == pytest.approx(expected)  # chunks change nothing


def test_knn_leaves_the_point_out_and_breaks_ties_to_the_lowest_label():
    # k = 1: rows 0 and 1 are each other's nearest other row and differ in label (both wrong; with
    # their own row counted they would be right); row 2's nearest is row 1, same label.
    assert knn_accuracy(np.array([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0]]), np.array([0, 1, 1]), k=1) == \
        pytest.approx(1 / 3)
    # k = 2: rows 0 and 2 each get one vote for label 0 and one for label 1; the tie goes to 0,
    # which is wrong for both (ties to the highest label would make them right); row 1 gets 1, 1.
    points, labels = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1]]), np.array([1, 0, 1])
    assert naive_knn_accuracy(points, labels, 2) == 0.0
    assert knn_accuracy(points, labels, k=2) == 0.0


def test_probe_matches_sklearn_on_the_stated_split():
    points, labels = noisy_classes(n=200, noise=1.5, seed=3)
    order = np.random.default_rng(5).permutation(200)
    test, train = order[:40], order[40:]  # the protocol: the first 20 % of the seeded permutation
    split_train, split_test = probe_split(200, seed=5)
    assert np.array_equal(split_train, train) and np.array_equal(split_test, test)
    scaler = StandardScaler().fit(points[train])
    probe = LogisticRegression(max_iter=1000).fit(scaler.transform(points[train]), labels[train])
    expected = float(np.mean(probe.predict(scaler.transform(points[test])) == labels[test]))
    assert linear_probe_accuracy(points, labels, seed=5) == pytest.approx(expected)
    assert 0.5 < expected < 1


def test_unlabelled_images_are_left_out_and_keys_say_the_labels_are_used():
    points, labels = noisy_classes(n=80)
    with_unlabelled = np.concatenate([points, 100 * np.ones((5, points.shape[1]), dtype=np.float32)])
    scores = embedding_quality(with_unlabelled, np.concatenate([labels, -np.ones(5, dtype=np.int64)]))
    assert set(scores) == {"supervised_knn_acc", "supervised_probe_acc"}
    assert scores["supervised_knn_acc"] == pytest.approx(knn_accuracy(points, labels, KNN_NEIGHBOURS))
    assert scores["supervised_probe_acc"] == pytest.approx(linear_probe_accuracy(points, labels))
    assert "USE THE GROUND-TRUTH LABELS" in PROTOCOL


def test_torch_input_and_bad_input():
    points, labels = noisy_classes()
    assert knn_accuracy(torch.from_numpy(points), labels, 5) == pytest.approx(knn_accuracy(points, labels, 5))
    with pytest.raises(ValueError, match=r"\(N, D\) embeddings and N labels"):
        knn_accuracy(points, labels[:10])
    with pytest.raises(ValueError, match="1 <= k < number of labelled images"):
        knn_accuracy(points[:5], labels[:5], k=20)
    with pytest.raises(ValueError, match="non-finite"):
        knn_accuracy(np.full((4, 2), np.nan), np.zeros(4, dtype=int), k=1)
    with pytest.raises(ValueError, match="images on both sides"):
        linear_probe_accuracy(points[:2], labels[:2])
