import pytest
import torch

from deepclust.cluster import sinkhorn_knopp
from support import naive_sinkhorn


def scores(b=64, k=10, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    # cosine-similarity-like scores in [-1, 1], as with normalised prototypes in SwAV
    return torch.tanh(torch.randn(b, k, generator=g, dtype=dtype))


@pytest.mark.parametrize("log_domain", [False, True])
def test_rows_sum_to_one(log_domain):
    q = sinkhorn_knopp(scores(), log_domain=log_domain)
    assert q.shape == (64, 10) and q.dtype == torch.float32
    assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-5)
    assert (q >= 0).all()


@pytest.mark.parametrize("log_domain", [False, True])
def test_cluster_marginals_converge(log_domain):
    b, k = 64, 8
    q = sinkhorn_knopp(scores(b, k, seed=1), n_iters=200, log_domain=log_domain)
    assert torch.allclose(q.sum(0), torch.full((k,), b / k), atol=1e-3)
    assert torch.allclose(q.sum(1), torch.ones(b), atol=1e-5)


def test_three_iterations_match_naive_loop():
    s = scores(b=12, k=5, seed=2, dtype=torch.float64)
    ref = torch.tensor(naive_sinkhorn(s.tolist(), 0.05, 3), dtype=torch.float64)
    out32 = sinkhorn_knopp(s.float(), epsilon=0.05, n_iters=3)
    assert torch.allclose(out32.double(), ref, atol=1e-6, rtol=0)
    out64 = sinkhorn_knopp(s, epsilon=0.05, n_iters=3)
    assert out64.dtype == torch.float64
    assert torch.allclose(out64, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_iters", [1, 3, 10])
def test_log_domain_matches_plain(n_iters):
    s = scores(b=128, k=20, seed=3)
    plain = sinkhorn_knopp(s, epsilon=0.05, n_iters=n_iters)
    logd = sinkhorn_knopp(s, epsilon=0.05, n_iters=n_iters, log_domain=True)
    assert torch.allclose(plain, logd, atol=1e-5, rtol=0)


@pytest.mark.parametrize("log_domain", [False, True])
def test_large_scores_no_nan(log_domain):
    s = scores(b=32, k=6, seed=4) * 1e3  # s / eps ~ 2e4: plain exp underflows everywhere
    q = sinkhorn_knopp(s, epsilon=0.05, log_domain=log_domain)
    assert torch.isfinite(q).all()
    assert torch.allclose(q.sum(1), torch.ones(32), atol=1e-5)
    ref = sinkhorn_knopp(s, epsilon=0.05, log_domain=True)
    assert torch.allclose(q, ref, atol=1e-6)


@pytest.mark.parametrize("log_domain", [False, True])
def test_non_uniform_cluster_weights(log_domain):
    b, k = 100, 4
    w = torch.tensor([0.4, 0.3, 0.2, 0.1])
    q = sinkhorn_knopp(scores(b, k, seed=5), n_iters=300, cluster_weights=w, log_domain=log_domain)
    assert torch.allclose(q.sum(0), b * w, atol=1e-3)
    assert torch.allclose(q.sum(1), torch.ones(b), atol=1e-5)
    # unnormalised weights are normalised
    q2 = sinkhorn_knopp(scores(b, k, seed=5), n_iters=300, cluster_weights=10 * w, log_domain=log_domain)
    assert torch.allclose(q, q2, atol=1e-6)


def test_no_gradient_and_detached():
    s = scores().requires_grad_(True)
    q = sinkhorn_knopp(s)
    assert not q.requires_grad and q.grad_fn is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scores=torch.zeros(3)), r"2-D .*\(3,\)"),
        (dict(scores=torch.zeros(4, 3, dtype=torch.long)), r"floating-point .*int64"),
        (dict(scores=torch.zeros(4, 3), epsilon=0.0), r"epsilon .* got 0.0"),
        (dict(scores=torch.zeros(4, 3), n_iters=-1), r"n_iters .* got -1"),
        (dict(scores=torch.zeros(4, 3), cluster_weights=torch.ones(2)), r"shape \(3,\).*\(2,\)"),
        (dict(scores=torch.zeros(4, 3), cluster_weights=torch.tensor([1.0, 0.0, 1.0])), r"> 0"),
        (dict(scores=torch.tensor([[0.0, float("nan")]])), r"NaN"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp(**kwargs)
