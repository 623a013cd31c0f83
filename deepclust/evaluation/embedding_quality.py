"""How well an embedding separates the classes: kNN and linear-probe accuracy.

Both scores USE THE GROUND-TRUTH LABELS. They judge a representation (an estimator's
``transform``; pixels for the pixel baselines), never a clustering, and nothing here feeds back
into training or label prediction. Every key they produce starts with ``supervised_``.

- :func:`knn_accuracy`: leave-one-out k-nearest-neighbour accuracy, k = 20, cosine similarity.
  Each image's 20 most similar *other* images (its own row is excluded by index; duplicates of it
  count) vote with one vote each; the class with most votes is the prediction, a tie going to the
  lowest class label. Computed chunk by chunk in torch (a block of rows against all rows), so
  70,000 × 128 embeddings take seconds on a GPU and well under a minute on a CPU.
- :func:`linear_probe_accuracy`: a seeded 80/20 split of the images
  (``numpy.random.default_rng(seed).permutation(N)``: the first 20 % are the test part, the rest
  the training part), features standardised with the training part's mean and standard deviation
  (scikit-learn's ``StandardScaler``), scikit-learn's ``LogisticRegression`` (L2, C = 1, lbfgs,
  ``max_iter`` = 1000, multinomial) fitted on the training part; the score is its accuracy on the
  test part.

Images without a label (label −1) are left out of both.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from deepclust.cluster.neighbours import nearest_neighbours

KNN_NEIGHBOURS = 20
PROBE_TEST_FRACTION = 0.2
PROBE_MAX_ITER = 1000
#: What the two scores are, for result files and tables that report them.
PROTOCOL = (f"supervised_knn_acc: leave-one-out {KNN_NEIGHBOURS}-nearest-neighbour accuracy on the embeddings, "
            "cosine similarity, one vote per neighbour, ties to the lowest class label; supervised_probe_acc: "
            f"logistic regression (scikit-learn, L2, C = 1, max_iter {PROBE_MAX_ITER}) on standardised embeddings, "
            f"trained on a seeded {100 - round(100 * PROBE_TEST_FRACTION)}/{round(100 * PROBE_TEST_FRACTION)} split "
            "of the images and scored on the held-out part. Both USE THE GROUND-TRUTH LABELS (evaluation only; "
            "no clustering sees them).")


def _labelled(embeddings, labels) -> tuple[np.ndarray, np.ndarray]:
    embeddings = np.asarray(embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
                            dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ValueError(f"embedding quality needs (N, D) embeddings and N labels, got embeddings of shape "
                         f"{embeddings.shape} and labels of shape {labels.shape}")
    if not np.isfinite(embeddings).all():
        raise ValueError("embedding quality: the embeddings hold non-finite values")
    keep = labels >= 0
    return embeddings[keep], labels[keep].astype(np.int64)


def knn_accuracy(embeddings, labels, k: int = KNN_NEIGHBOURS, *, device: str | torch.device = "cpu",
                 chunk_size: int | None = None) -> float:
    """Leave-one-out kNN accuracy (cosine similarity, one vote per neighbour, ties to the lowest label).

    USES THE LABELS. ``chunk_size`` rows are compared with all rows at a time (default: as many as
    keep the similarity block near 256 MB).
    """
    embeddings, labels = _labelled(embeddings, labels)
    n = len(embeddings)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"kNN accuracy needs 1 <= k < number of labelled images ({n}), got k={k!r}")
    device = torch.device(device)
    neighbours = nearest_neighbours(torch.from_numpy(embeddings).to(device), k, chunk_size=chunk_size)
    targets = torch.from_numpy(labels).to(device)
    votes = torch.zeros(n, int(labels.max()) + 1, device=device)
    votes.scatter_add_(1, targets[neighbours], torch.ones_like(neighbours, dtype=votes.dtype))
    correct = int((votes.argmax(dim=1) == targets).sum())  # argmax: first = lowest label
    return correct / n


def probe_split(n: int, seed: int = 0, test_fraction: float = PROBE_TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, test indices) of the linear probe: the first ``round(test_fraction·n)``
    of ``numpy.random.default_rng(seed).permutation(n)`` are the test part."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    if not 0 < n_test < n:
        raise ValueError(f"the linear probe needs images on both sides of its {test_fraction:.0%} test split, "
                         f"got {n} labelled images")
    return order[n_test:], order[:n_test]


def linear_probe_accuracy(embeddings, labels, seed: int = 0, *, max_iter: int = PROBE_MAX_ITER) -> float:
    """Held-out accuracy of a logistic regression on standardised embeddings (seeded 80/20 split).

    USES THE LABELS. The protocol is the module's docstring's; lbfgs stopping at ``max_iter``
    before convergence is part of it (its warning is silenced).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    embeddings, labels = _labelled(embeddings, labels)
    train, test = probe_split(len(embeddings), seed)
    if len(np.unique(labels[train])) < 2:
        raise ValueError("the linear probe needs at least two classes in its training part")
    scaler = StandardScaler().fit(embeddings[train])
    probe = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(scaler.transform(embeddings[train]), labels[train])
    return float((probe.predict(scaler.transform(embeddings[test])) == labels[test]).mean())


def embedding_quality(embeddings, labels, seed: int = 0, *, device: str | torch.device = "cpu") -> dict:
    """``{"supervised_knn_acc": ..., "supervised_probe_acc": ...}`` of the embeddings (USE THE LABELS)."""
    return {"supervised_knn_acc": knn_accuracy(embeddings, labels, device=device),
            "supervised_probe_acc": linear_probe_accuracy(embeddings, labels, seed)}
