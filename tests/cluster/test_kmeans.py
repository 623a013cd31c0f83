import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans

from deepclust.cluster import KMeansResult, TorchKMeans, assign, kmeans
from deepclust.evaluation import cluster_accuracy

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICES.append("mps")


def blobs(n_per=60, k=5, dim=8, spread=0.3, sep=10.0, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(k, dim)) * sep
    x = np.concatenate([c + spread * g.normal(size=(n_per, dim)) for c in centers])
    y = np.repeat(np.arange(k), n_per)
    return x.astype(np.float32), y


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_recovers_separated_blobs(device, init):
    x, y = blobs()
    res = kmeans(torch.from_numpy(x).to(device), 5, n_init=3, init=init, seed=1)
    assert isinstance(res, KMeansResult)
    assert res.labels.device.type == device and res.centroids.device.type == device
    assert res.labels.dtype == torch.long and res.labels.shape == (len(y),)
    assert res.centroids.shape == (5, 8) and res.centroids.dtype == torch.float32
    assert cluster_accuracy(y, res.labels) == 1.0
    assert 1 <= res.n_iter < 300
    # inertia equals the sum of squared distances to the assigned centroids
    xt = torch.from_numpy(x).to(device)
    manual = ((xt - res.centroids[res.labels]) ** 2).sum().item()
    assert res.inertia == pytest.approx(manual, rel=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_for_fixed_seed(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g).to(device)
    a = kmeans(x, 10, seed=3, max_iter=5)
    b = kmeans(x, 10, seed=3, max_iter=5)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.centroids, b.centroids)
    c = kmeans(x, 10, seed=4, max_iter=5)
    assert not torch.equal(a.centroids, c.centroids)


def test_inertia_close_to_sklearn():
    x, _ = blobs(n_per=100, k=6, dim=4, spread=2.0, sep=3.0, seed=2)
    ours = kmeans(torch.from_numpy(x), 6, n_init=10, seed=0)
    ref = KMeans(n_clusters=6, n_init=10, random_state=0).fit(x)
    assert ours.inertia == pytest.approx(ref.inertia_, rel=0.01)


def test_more_restarts_never_worse():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    one = kmeans(x, 7, n_init=1, seed=5)
    many = kmeans(x, 7, n_init=6, seed=5)  # first restart is identical to `one`
    assert many.inertia <= one.inertia + 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_cosine_metric_on_directional_data(device):
    g = np.random.default_rng(0)
    angles = np.array([0.0, 2.0, 4.0])
    y = np.repeat(np.arange(3), 50)
    theta = angles[y] + 0.05 * g.normal(size=y.size)
    radius = g.uniform(0.1, 20.0, size=y.size)  # magnitudes vary wildly; direction is the signal
    x = np.stack([radius * np.cos(theta), radius * np.sin(theta)], 1).astype(np.float32)
    res = kmeans(torch.from_numpy(x).to(device), 3, metric="cosine", n_init=3)
    assert cluster_accuracy(y, res.labels) == 1.0
    assert torch.allclose(res.centroids.norm(dim=1), torch.ones(3, device=device), atol=1e-5)
    # inertia is on normalised data: sum of 2 (1 - cos)
    xn = torch.nn.functional.normalize(torch.from_numpy(x).to(device), dim=1)
    cos = (xn * res.centroids[res.labels]).sum(1)
    assert res.inertia == pytest.approx((2 * (1 - cos)).sum().item(), rel=1e-3, abs=1e-4)
    # euclidean k-means splits by magnitude instead
    eu = kmeans(torch.from_numpy(x).to(device), 3, n_init=3)
    assert cluster_accuracy(y, eu.labels) < 1.0


def test_empty_cluster_reseeded_with_farthest_point():
    g = torch.Generator().manual_seed(0)
    a = 0.1 * torch.randn(20, 2, generator=g)
    b = 0.1 * torch.randn(20, 2, generator=g) + torch.tensor([10.0, 0.0])
    outlier = torch.tensor([[0.0, 5.0]])  # farthest from its centroid after the first E-step
    x = torch.cat([a, b, outlier])
    init = torch.tensor([[0.0, 0.0], [10.0, 0.0], [1000.0, 1000.0]])  # third one gets no point
    res = kmeans(x, 3, init=init, max_iter=1)
    assert torch.allclose(res.centroids[2], outlier[0])
    assert torch.allclose(res.centroids[0], a.mean(0), atol=1e-6)  # outlier moved out of cluster 0
    assert res.labels[-1] == 2 and torch.bincount(res.labels, minlength=3).min() > 0
    full = kmeans(x, 3, init=init)
    assert torch.bincount(full.labels, minlength=3).tolist() == [20, 20, 1]


def test_many_empty_clusters_with_duplicates():
    x = torch.tensor([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5 + [[5.0, 5.0]] * 5)
    res = kmeans(x, 3, init="random", n_init=4, seed=0)
    assert cluster_accuracy(np.repeat(np.arange(3), 5), res.labels) == 1.0
    assert res.inertia == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_chunked_equals_unchunked(metric):
    x, _ = blobs(n_per=50, k=4, dim=6, spread=1.0, sep=4.0, seed=3)
    xt = torch.from_numpy(x)
    full = kmeans(xt, 4, metric=metric, n_init=2, seed=7)
    chunked = kmeans(xt, 4, metric=metric, n_init=2, seed=7, chunk_size=7)
    assert torch.equal(full.labels, chunked.labels)
    assert torch.allclose(full.centroids, chunked.centroids, atol=1e-5)
    assert full.inertia == pytest.approx(chunked.inertia, rel=1e-5)
    assert full.n_iter == chunked.n_iter


def test_assign_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(101, 7, generator=g, dtype=torch.float64)
    c = torch.randn(9, 7, generator=g, dtype=torch.float64)
    ref = torch.cdist(x, c).argmin(1)
    assert torch.equal(assign(x, c, chunk_size=10), ref)
    xn, cn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(c, dim=1)
    assert torch.equal(assign(x, c, metric="cosine", chunk_size=13), (xn @ cn.T).argmax(1))


def test_numpy_input_accepted():
    x, y = blobs(k=3)
    res = kmeans(x.astype(np.float64), 3, n_init=2)
    assert res.centroids.dtype == torch.float32
    assert cluster_accuracy(y, res.labels) == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_clusters=0), r"n_clusters .* got 0"),
        (dict(n_clusters=51), r"n_samples=50\], got 51"),
        (dict(n_clusters=3, metric="manhattan"), r"metric .* 'manhattan'"),
        (dict(n_clusters=3, init="kmeans"), r"init .* 'kmeans'"),
        (dict(n_clusters=3, init=torch.zeros(2, 2)), r"init must have shape .*\(3, 2\).*\(2, 2\)"),
        (dict(n_clusters=3, n_init=0), r"n_init .* got 0"),
        (dict(n_clusters=3, tol=-1.0), r"tol .* got -1.0"),
        (dict(n_clusters=3, chunk_size=0), r"chunk_size .* got 0"),
    ],
)
def test_argument_errors(kwargs, match):
    x = torch.randn(50, 2)
    with pytest.raises(ValueError, match=match):
        kmeans(x, **kwargs)


def test_data_errors():
    with pytest.raises(ValueError, match=r"x must be 2-D .*\(4, 2, 2\)"):
        kmeans(torch.zeros(4, 2, 2), 2)
    with pytest.raises(ValueError, match=r"x must be 2-D .*\(10,\)"):
        kmeans(torch.zeros(10), 2)
    x = torch.randn(10, 2)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN/Inf"):
        kmeans(x, 2)
    x[3, 1] = float("inf")
    with pytest.raises(ValueError, match=r"NaN/Inf"):
        kmeans(x, 2)


def test_estimator_api():
    x, y = blobs(k=4)
    est = TorchKMeans(n_clusters=4, n_init=2, random_state=0)
    labels = est.fit_predict(x)
    assert isinstance(labels, np.ndarray) and labels.shape == y.shape
    assert isinstance(est.cluster_centers_, np.ndarray) and est.cluster_centers_.shape == (4, 8)
    assert isinstance(est.inertia_, float) and isinstance(est.n_iter_, int)
    assert cluster_accuracy(y, labels) == 1.0
    np.testing.assert_array_equal(est.predict(x), labels)
    np.testing.assert_array_equal(est.predict(torch.from_numpy(x)), labels)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    with pytest.raises(ValueError, match="not fitted"):
        cloned.predict(x)
    with pytest.raises(ValueError, match=r"3 features .* fitted with 8"):
        est.predict(x[:, :3])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_soft_assign_is_a_softmax_of_scaled_similarities(metric):
    import math

    from deepclust.cluster import soft_assign

    x = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-2.0, 1.0]])
    centroids = torch.tensor([[0.0, 1.0], [2.0, 0.0], [-1.0, -1.0]])
    probabilities = soft_assign(x, centroids, metric=metric, temperature=0.5)
    for i, point in enumerate(x.tolist()):
        if metric == "cosine":
            scores = [sum(a * b for a, b in zip(point, c)) / math.hypot(*point) / math.hypot(*c)
                      for c in centroids.tolist()]
        else:
            scores = [-sum((a - b) ** 2 for a, b in zip(point, c)) for c in centroids.tolist()]
        weights = [math.exp(score / 0.5) for score in scores]
        assert probabilities[i].tolist() == pytest.approx([w / sum(weights) for w in weights], rel=1e-5)
    assert torch.equal(probabilities.argmax(1), assign(x, centroids, metric=metric))
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        soft_assign(x, centroids, temperature=0)
