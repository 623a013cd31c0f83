"""Clustering metrics: ACC (Hungarian), NMI, ARI and collapse statistics.

All functions accept 1-D integer label sequences (numpy arrays, lists or torch tensors on any
device). Labels need not be ``0..K-1``; they are remapped with :func:`numpy.unique`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "cluster_accuracy",
    "hungarian_mapping",
    "normalized_mutual_info",
    "adjusted_rand_index",
    "collapse_statistics",
    "kl_to_prior",
    "evaluate_clustering",
    "format_metrics",
]

UNKNOWN_LABEL = -1


def _as_labels(name: str, y: Any) -> np.ndarray:
    """Convert ``y`` to a 1-D int64 numpy array or raise ``ValueError`` naming ``name``."""
    if hasattr(y, "detach") and hasattr(y, "cpu"):  # torch tensor, any device
        y = y.detach().cpu().numpy()
    try:
        arr = np.asarray(y)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one label")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        # Accept float arrays only when every value is a finite whole number (e.g. loaded from text).
        if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(
            f"{name} must contain integer labels, got dtype {arr.dtype} with non-integer values "
            f"(shape {arr.shape})"
        )
    raise ValueError(f"{name} must contain integer labels, got dtype {arr.dtype} (shape {arr.shape})")


def _check_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels("y_true", y_true)
    p = _as_labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got y_true shape {t.shape} "
            f"and y_pred shape {p.shape}"
        )
    return t, p


def _contingency(t: np.ndarray, p: np.ndarray):
    """Return (C, classes, clusters) with C[i, j] = #points in cluster i with class j."""
    classes, t_idx = np.unique(t, return_inverse=True)
    clusters, p_idx = np.unique(p, return_inverse=True)
    c = np.zeros((clusters.size, classes.size), dtype=np.int64)
    np.add.at(c, (p_idx, t_idx), 1)
    return c, classes, clusters


def _match(c: np.ndarray):
    # Maximise matched counts; rectangular matrices are fine: min(#clusters, #classes) pairs.
    return linear_sum_assignment(c, maximize=True)


def cluster_accuracy(y_true: Any, y_pred: Any) -> float:
    """Clustering accuracy under the best one-to-one cluster→class mapping (Hungarian).

    ACC = max_m (1/N) Σ_i 1[y_true_i = m(y_pred_i)] over injective maps m. When there are more
    clusters than classes, the unmatched clusters count as wrong; when there are fewer, the
    unmatched classes are wrong.
    """
    t, p = _check_pair(y_true, y_pred)
    c, _, _ = _contingency(t, p)
    rows, cols = _match(c)
    return float(c[rows, cols].sum()) / t.size


def hungarian_mapping(y_true: Any, y_pred: Any) -> dict[int, int]:
    """Best one-to-one mapping ``{cluster_label: class_label}`` (original label values).

    Clusters left unmatched (more clusters than classes) are absent from the dict.
    """
    t, p = _check_pair(y_true, y_pred)
    c, classes, clusters = _contingency(t, p)
    rows, cols = _match(c)
    return {int(clusters[r]): int(classes[k]) for r, k in zip(rows, cols)}


def normalized_mutual_info(y_true: Any, y_pred: Any) -> float:
    """NMI with the arithmetic mean of the entropies as normaliser (sklearn's default)."""
    t, p = _check_pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p, average_method="arithmetic"))


def adjusted_rand_index(y_true: Any, y_pred: Any) -> float:
    """Adjusted Rand index (Hubert & Arabie, 1985)."""
    t, p = _check_pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def kl_to_prior(y_pred: Any, n_clusters: int, prior: Any = None) -> float:
    """KL* = KL(q ‖ π) = Σ_k q_k log(q_k / π_k) of the hard cluster-size distribution q_k = n_k / N
    to a prior π (HardReg, Mahon & Lukasiewicz AAAI 2024: the collapse measure KL*; 0 log 0 = 0).

    ``prior=None`` is the uniform prior (KL* = log K − H(q), whatever the label values); a given
    prior (K non-negative weights, normalised here) is matched by index, so labels must then be
    0..K−1: cluster k is the one the method was asked to give the share π_k.
    """
    p = _as_labels("y_pred", y_pred)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    if prior is None:
        _, counts = np.unique(p, return_counts=True)
        if counts.size > n_clusters:
            raise ValueError(f"y_pred has {counts.size} distinct cluster labels but n_clusters={n_clusters}")
        q = counts / counts.sum()
        return float((q * np.log(q * n_clusters)).sum())
    weights = np.asarray(prior, dtype=np.float64)
    if weights.shape != (n_clusters,) or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"prior must hold n_clusters={n_clusters} finite non-negative weights with a positive "
                         f"sum, got {weights.tolist() if weights.size <= 20 else weights.shape}")
    if p.min() < 0 or p.max() >= n_clusters:
        raise ValueError(f"with a prior, y_pred labels must be 0..{n_clusters - 1}; got labels in "
                         f"[{p.min()}, {p.max()}]")
    q = np.bincount(p, minlength=n_clusters) / p.size
    pi = weights / weights.sum()
    used = q > 0
    with np.errstate(divide="ignore"):
        return float((q[used] * np.log(q[used] / pi[used])).sum())


def collapse_statistics(y_pred: Any, n_clusters: int | None = None, prior: Any = None) -> dict[str, float]:
    """Statistics of the cluster-size distribution, to detect degenerate (collapsed) solutions.

    ``n_clusters`` is the number of clusters the model may use (empty ones included); ``None``
    means the number of distinct predicted labels. With sizes ``n_1..n_K`` (K = n_clusters,
    zeros for empty clusters) and ``p_k = n_k / N``:

    - ``n_clusters_used``: #non-empty clusters;
    - ``largest_cluster_share``: max_k p_k;
    - ``cluster_size_entropy``: H = -Σ p_k log p_k (nats, 0 log 0 = 0);
    - ``normalized_size_entropy``: H / log K (1 = perfectly balanced; defined as 1.0 if K = 1);
    - ``cluster_size_cv``: std(n) / mean(n) over the K sizes (population std, ddof = 0);
    - ``kl_star``: KL(p ‖ π) to the ``prior`` π (uniform when None), see :func:`kl_to_prior`.
    """
    p = _as_labels("y_pred", y_pred)
    _, counts = np.unique(p, return_counts=True)
    if n_clusters is None:
        n_clusters = int(counts.size)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    n_clusters = int(n_clusters)
    if counts.size > n_clusters:
        raise ValueError(
            f"y_pred has {counts.size} distinct cluster labels but n_clusters={n_clusters}; "
            "expected at most n_clusters distinct labels"
        )
    sizes = np.zeros(n_clusters, dtype=np.float64)
    sizes[: counts.size] = counts
    n = sizes.sum()
    share = sizes / n
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    norm_entropy = entropy / np.log(n_clusters) if n_clusters > 1 else 1.0
    cv = float(sizes.std() / sizes.mean())
    return {
        "n_clusters_used": int(counts.size),
        "largest_cluster_share": float(share.max()),
        "cluster_size_entropy": entropy,
        "normalized_size_entropy": float(norm_entropy),
        "cluster_size_cv": cv,
        "kl_star": kl_to_prior(p, n_clusters, prior),
    }


def evaluate_clustering(y_true: Any, y_pred: Any, n_clusters: int | None = None, prior: Any = None) -> dict[str, float]:
    """ACC, NMI, ARI and collapse statistics in one dict.

    ``y_true`` may be ``None`` (only the collapse statistics are returned). Points whose true
    label is ``-1`` (unknown) are excluded from acc/nmi/ari; the collapse statistics always use
    every prediction. If no point has a known label, acc/nmi/ari are NaN. ``prior``: the cluster
    prior of the ``kl_star`` collapse measure (uniform when None).
    """
    p = _as_labels("y_pred", y_pred)
    out: dict[str, float] = {}
    if y_true is not None:
        t, p = _check_pair(y_true, p)
        known = t != UNKNOWN_LABEL
        if known.any():
            tk, pk = t[known], p[known]
            out["acc"] = cluster_accuracy(tk, pk)
            out["nmi"] = normalized_mutual_info(tk, pk)
            out["ari"] = adjusted_rand_index(tk, pk)
        else:
            out.update(acc=float("nan"), nmi=float("nan"), ari=float("nan"))
    out.update(collapse_statistics(p, n_clusters, prior))
    return out


def format_metrics(metrics: dict, prefix: str = "") -> str:
    """One line for people: ``prefix`` then ACC/NMI/ARI (those present) and the clusters used."""
    shown = [f"{name.upper()} {metrics[name]:.4f}" for name in ("acc", "nmi", "ari") if name in metrics]
    shown.append(f"clusters used {metrics.get('n_clusters_used')}")
    return prefix + "  ".join(shown)
