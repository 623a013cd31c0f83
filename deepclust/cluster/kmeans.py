"""K-means in PyTorch on the input's device (CPU, CUDA or MPS).

Lloyd's algorithm with greedy k-means++ seeding (Arthur & Vassilvitskii, 2007; the greedy
variant tries ``2 + floor(ln K)`` D²-sampled candidates per step and keeps the one that lowers
the potential most), ``n_init`` restarts keeping the lowest inertia, and optional spherical
k-means (``metric="cosine"``: inputs L2-normalised, centroids re-normalised after each update).

Squared distances are computed chunk-wise as ``||x||² - 2 x·c + ||c||²`` so that at most
``chunk_size × K`` distances exist at once. Computation is float32.

Convergence: stop when the total squared centroid movement ``Σ_k ||c_k^new - c_k^old||²`` is
``<= tol * mean_d Var(X[:, d])`` (the same relative tolerance as scikit-learn; for the cosine
metric the variance is that of the normalised inputs).

Determinism: for a fixed ``seed`` the initialisation is deterministic on a given device (a
``torch.Generator`` on that device). On CUDA, ``index_add_`` uses atomics, so centroid sums may
differ in the last bits between runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClusterMixin

__all__ = ["KMeansResult", "kmeans", "assign", "soft_assign", "TorchKMeans"]

_METRICS = ("euclidean", "cosine")
DEFAULT_CHUNK_SIZE = 65536


@dataclass
class KMeansResult:
    """Result of :func:`kmeans`.

    labels: (N,) int64 nearest-centroid index per point (consistent with ``centroids``).
    centroids: (K, D) float32 (unit norm for the cosine metric).
    inertia: Σ_i ||x_i - c_{label_i}||² (for cosine: on normalised x, i.e. Σ 2(1 - cos)).
    n_iter: Lloyd iterations run in the best restart.
    """

    labels: torch.Tensor
    centroids: torch.Tensor
    inertia: float
    n_iter: int


# ----------------------------------------------------------------------------- validation
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_metric(metric: str) -> str:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    return metric


def _check_data(x, name: str = "x") -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"{name} must be a real numeric tensor, got dtype {x.dtype}")
    x = x.to(torch.float32)
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        raise ValueError(f"{name} contains {n_bad} NaN/Inf value(s); expected finite values")
    return x


# ----------------------------------------------------------------------------- distances
def _prepare(x: torch.Tensor, metric: str) -> torch.Tensor:
    return F.normalize(x, dim=1) if metric == "cosine" else x


def _nearest(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor, chunk_size: int):
    """Nearest centroid and its squared distance for every row of ``x``, chunk-wise."""
    c_sq = (c * c).sum(1)
    labels = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dists = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], chunk_size):
        e = min(s + chunk_size, x.shape[0])
        d = torch.addmm(c_sq.unsqueeze(0), x[s:e], c.T, beta=1.0, alpha=-2.0)  # (chunk, K)
        d.add_(x_sq[s:e].unsqueeze(1)).clamp_min_(0.0)
        dmin, lab = d.min(dim=1)
        labels[s:e] = lab
        dists[s:e] = dmin
    return labels, dists


def _sq_dist_to(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(M, N) squared distances from the M rows of ``c`` to every point, chunk-wise over N."""
    c_sq = (c * c).sum(1)
    out = torch.empty(c.shape[0], x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], chunk_size):
        e = min(s + chunk_size, x.shape[0])
        d = torch.addmm(x_sq[s:e].unsqueeze(0), c, x[s:e].T, beta=1.0, alpha=-2.0)
        out[:, s:e] = d.add_(c_sq.unsqueeze(1)).clamp_min_(0.0)
    return out


def assign(x, centroids, metric: str = "euclidean", chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Index of the nearest centroid for each row of ``x`` (computed on ``x``'s device).

    For ``metric="cosine"`` both inputs are L2-normalised (nearest = highest cosine similarity).
    """
    return nearest(x, centroids, metric, chunk_size)[0]


def nearest(x, centroids, metric: str = "euclidean", chunk_size: int = DEFAULT_CHUNK_SIZE
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, squared distances)``: the nearest centroid of each row of ``x`` (:func:`assign`) and
    the row's squared distance to it, each row's share of the inertia (cosine: on normalised
    rows, 2(1 - cos))."""
    _check_metric(metric)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    x = _check_data(x, "x")
    c = _check_data(centroids, "centroids").to(x.device)
    if c.shape[1] != x.shape[1]:
        raise ValueError(
            f"centroids must have {x.shape[1]} features like x, got shape {tuple(c.shape)}"
        )
    x = _prepare(x, metric)
    c = _prepare(c, metric)
    return _nearest(x, (x * x).sum(1), c, chunk_size)


def soft_assign(x, centroids, metric: str = "cosine", temperature: float = 0.1) -> torch.Tensor:
    """(N, K) soft assignments of the rows of ``x`` to ``centroids``: a softmax over the clusters of

    - ``metric="cosine"``: cos(x_i, c_k) / τ;
    - ``metric="euclidean"``: −‖x_i − c_k‖² / τ,

    with τ = ``temperature`` (> 0). Row ``i``'s largest entry is at :func:`assign`'s label.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    _check_metric(metric)
    x = _check_data(x, "x")
    c = _check_data(centroids, "centroids").to(x.device)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"centroids must have {x.shape[1]} features like x, got shape {tuple(c.shape)}")
    if metric == "cosine":
        scores = _prepare(x, metric) @ _prepare(c, metric).T
    else:
        scores = -_sq_dist_to(c, (c * c).sum(1), x, DEFAULT_CHUNK_SIZE)
    return torch.softmax(scores / float(temperature), dim=1)


# ----------------------------------------------------------------------------- seeding
def _kmeans_pp(x, x_sq, k: int, gen: torch.Generator, chunk_size: int) -> torch.Tensor:
    """Greedy k-means++: each step samples candidates ∝ D² and keeps the best one."""
    n = x.shape[0]
    n_trials = 2 + int(math.log(k))
    idx = torch.empty(k, dtype=torch.long, device=x.device)
    first = torch.randint(n, (1,), generator=gen, device=x.device)
    idx[0] = first[0]
    closest = _sq_dist_to(x, x_sq, x[first], chunk_size)[0]  # (N,) D² to the chosen set
    for i in range(1, k):
        cum = torch.cumsum(closest, 0)
        total = cum[-1]
        r = torch.rand(n_trials, generator=gen, device=x.device, dtype=x.dtype) * total
        cand = torch.searchsorted(cum, r, right=True).clamp_(max=n - 1)
        # If every remaining D² is 0 (duplicate points) fall back to uniform candidates.
        uniform = torch.randint(n, (n_trials,), generator=gen, device=x.device)
        cand = torch.where(total > 0, cand, uniform)
        d_cand = _sq_dist_to(x, x_sq, x[cand], chunk_size)  # (trials, N)
        torch.minimum(d_cand, closest.unsqueeze(0), out=d_cand)
        best = torch.argmin(d_cand.sum(1))
        idx[i] = cand[best]
        closest = d_cand[best]
    return x[idx].clone()


def _random_init(x, k: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randperm(x.shape[0], generator=gen, device=x.device)[:k]
    return x[idx].clone()


# ----------------------------------------------------------------------------- Lloyd
def _lloyd(x, x_sq, c, max_iter: int, tol_abs: float, metric: str, chunk_size: int):
    k = c.shape[0]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels, dists = _nearest(x, x_sq, c, chunk_size)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        empty = counts == 0
        n_empty = int(empty.sum())
        if n_empty:
            # Re-seed each empty cluster with one of the points farthest from their centroid
            # (stable sort → deterministic), moving that point out of its old cluster.
            order = torch.sort(dists, descending=True, stable=True).indices[:n_empty]
            empty_idx = torch.nonzero(empty).flatten()
            old = labels[order]
            sums.index_add_(0, old, -x[order])
            counts.index_add_(0, old, -torch.ones_like(old, dtype=x.dtype))
            sums[empty_idx] = x[order]
            counts[empty_idx] = 1.0
        new_c = torch.where(
            (counts > 0).unsqueeze(1), sums / counts.clamp_min(1.0).unsqueeze(1), c
        )
        if metric == "cosine":
            new_c = F.normalize(new_c, dim=1)
        shift = float(((new_c - c) ** 2).sum())
        c = new_c
        if shift <= tol_abs:
            break
    labels, dists = _nearest(x, x_sq, c, chunk_size)  # labels consistent with final centroids
    return labels, c, float(dists.sum()), n_iter


def kmeans(
    x: torch.Tensor,
    n_clusters: int,
    *,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    metric: str = "euclidean",
    init="k-means++",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> KMeansResult:
    """Cluster the rows of ``x`` (N, D) into ``n_clusters`` groups on ``x``'s device.

    init: ``"k-means++"`` (greedy), ``"random"`` (K distinct points) or a (K, D) tensor of
    initial centroids (then a single run is made whatever ``n_init``). Restarts draw from one
    generator seeded with ``seed``, so they differ from each other but the whole call is
    reproducible. See the module docstring for the tolerance and determinism.
    """
    x = _check_data(x, "x")
    n, dim = x.shape
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= n:
        raise ValueError(
            f"n_clusters must be an integer in [1, n_samples={n}], got {n_clusters!r}"
        )
    k = int(n_clusters)
    n_init = _check_int("n_init", n_init, 1)
    max_iter = _check_int("max_iter", max_iter, 1)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    seed = _check_int("seed", seed, 0)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0 or math.isinf(tol):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    metric = _check_metric(metric)

    init_c = None
    if isinstance(init, (torch.Tensor, np.ndarray)):
        init_c = _check_data(init, "init").to(x.device)
        if tuple(init_c.shape) != (k, dim):
            raise ValueError(
                f"init must have shape (n_clusters, n_features) = ({k}, {dim}), got {tuple(init_c.shape)}"
            )
        n_init = 1
    elif init not in ("k-means++", "random"):
        raise ValueError(f"init must be 'k-means++', 'random' or a ({k}, {dim}) tensor, got {init!r}")

    x = _prepare(x, metric)
    x_sq = (x * x).sum(1)
    tol_abs = float(tol) * float(x.var(dim=0, unbiased=False).mean())
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed)

    best = None
    for _ in range(n_init):
        if init_c is not None:
            c0 = _prepare(init_c, metric).clone()
        elif init == "k-means++":
            c0 = _kmeans_pp(x, x_sq, k, gen, chunk_size)
        else:
            c0 = _random_init(x, k, gen)
        res = _lloyd(x, x_sq, c0, max_iter, tol_abs, metric, chunk_size)
        if best is None or res[2] < best[2]:
            best = res
    labels, c, inertia, n_iter = best
    return KMeansResult(labels=labels, centroids=c, inertia=inertia, n_iter=n_iter)


# ----------------------------------------------------------------------------- estimator
class TorchKMeans(BaseEstimator, ClusterMixin):
    """scikit-learn style wrapper around :func:`kmeans`.

    ``device``: where to compute (``"cpu"``, ``"cuda"``, ``"mps"``...); ``None`` uses the device
    of a tensor input (CPU for numpy). ``random_state`` is the integer seed (``None``: a fresh
    random seed). Fitted attributes are numpy: ``labels_``, ``cluster_centers_``, plus
    ``inertia_`` (float) and ``n_iter_`` (int).
    """

    def __init__(
        self,
        n_clusters: int = 8,
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        metric: str = "euclidean",
        random_state: int | None = 0,
        device="cpu",
    ):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.metric = metric
        self.random_state = random_state
        self.device = device

    def _to_tensor(self, X, name: str = "X") -> torch.Tensor:
        x = _check_data(X, name)
        if self.device is not None:
            x = x.to(self.device)
        return x

    def fit(self, X, y=None):
        x = self._to_tensor(X)
        seed = self.random_state
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        res = kmeans(
            x,
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            metric=self.metric,
            seed=seed,
        )
        self.labels_ = res.labels.cpu().numpy()
        self.cluster_centers_ = res.centroids.cpu().numpy()
        self.inertia_ = res.inertia
        self.n_iter_ = res.n_iter
        self.n_features_in_ = int(x.shape[1])
        return self

    def predict(self, X):
        if not hasattr(self, "cluster_centers_"):
            raise ValueError("This TorchKMeans instance is not fitted yet; call fit(X) first")
        x = self._to_tensor(X)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} features but TorchKMeans was fitted with {self.n_features_in_} "
                f"(shape seen {tuple(x.shape)})"
            )
        c = torch.from_numpy(self.cluster_centers_).to(x.device)
        return assign(x, c, metric=self.metric).cpu().numpy()

    def fit_predict(self, X, y=None):
        return self.fit(X).labels_
