"""ConCURL's consensus consistency against naive loops (fidelity test 3 of docs/methods/concurl.md)."""
import math

import pytest
import torch

from deepclust.cluster import RandomProjections
from deepclust.losses import ConsensusLoss
from deepclust.losses.consensus import projected_scores


def naive_h(q, s, tau):
    total = 0.0
    for qb, sb in zip(q, s):
        norm = sum(math.exp(v / tau) for v in sb)
        total += -sum(qk * (sk / tau - math.log(norm)) for qk, sk in zip(qb, sb))
    return total / len(q)


def normalise(vector):
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def naive_projected_scores(u, w, matrices):
    """s_t[b][k] = normalise(R_t u_b) · normalise(R_t w_k), with Python lists."""
    out = []
    for r in matrices.tolist():
        project = lambda x: normalise([sum(rij * xj for rij, xj in zip(row, x)) for row in r])  # noqa: E731
        pu = [project(x) for x in u.tolist()]
        pw = [project(x) for x in w.tolist()]
        out.append([[sum(a * b for a, b in zip(x, c)) for c in pw] for x in pu])
    return out


# --- projected scores and the consensus loss ---------------------------------------------------
def tiny(seed=0, t=3, b=4, k=3, d=5, p=2):
    g = torch.Generator().manual_seed(seed)
    u1, u2 = torch.randn(b, d, generator=g, dtype=torch.float64), torch.randn(b, d, generator=g, dtype=torch.float64)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    q1, q2 = torch.rand(b, k, generator=g, dtype=torch.float64), torch.rand(b, k, generator=g, dtype=torch.float64)
    projections = RandomProjections(t, p, d, seed=seed).double()
    return u1, u2, w, projections, q1 / q1.sum(1, keepdim=True), q2 / q2.sum(1, keepdim=True)


def test_projected_scores_match_naive():
    u1, _, w, projections, _, _ = tiny()
    scores = projected_scores(u1, w, projections)
    assert scores.shape == (3, 4, 3)
    assert torch.allclose(scores.double(), torch.tensor(naive_projected_scores(u1, w, projections.matrices),
                                                        dtype=torch.float64), atol=1e-6)


def test_consensus_loss_equals_per_projection_loop():
    u1, u2, w, projections, q1, q2 = tiny()
    tau = 0.1
    s1 = naive_projected_scores(u1, w, projections.matrices)
    s2 = naive_projected_scores(u2, w, projections.matrices)
    per_t = [0.5 * (naive_h(q2.tolist(), s1[t], tau) + naive_h(q1.tolist(), s2[t], tau)) for t in range(3)]
    loss = ConsensusLoss(tau)(u1, u2, w, projections, q1, q2)
    assert loss.item() == pytest.approx(sum(per_t) / 3, rel=1e-5)


def test_consensus_minimal_when_every_projection_predicts_the_target():
    _, _, _, _, q1, q2 = tiny()
    tau, t = 0.1, 3
    loss = ConsensusLoss(tau)
    # softmax(s/τ) = q exactly when s = τ log q (view 1 predicts q2, view 2 predicts q1)
    best1, best2 = (tau * q2.log()).expand(t, -1, -1), (tau * q1.log()).expand(t, -1, -1)
    entropy = 0.5 * (naive_h(q2.tolist(), best1[0].tolist(), tau) + naive_h(q1.tolist(), best2[0].tolist(), tau))
    minimum = loss.from_scores(best1, best2, q1, q2).item()
    assert minimum == pytest.approx(entropy, rel=1e-9)  # = ½ (H(q2) + H(q1)), the lowest cross-entropy
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        bump1 = best1 + 0.05 * torch.randn(best1.shape, generator=g, dtype=torch.float64)
        bump2 = best2 + 0.05 * torch.randn(best2.shape, generator=g, dtype=torch.float64)
        assert loss.from_scores(bump1, bump2, q1, q2).item() > minimum


@pytest.mark.parametrize("detach", [True, False])
def test_prototype_gradient_only_without_no_grad(detach):
    u1, u2, w, projections, q1, q2 = tiny()
    u1.requires_grad_(True)
    w.requires_grad_(True)
    ConsensusLoss(0.1, detach_prototypes=detach)(u1, u2, w, projections, q1, q2).backward()
    assert u1.grad is not None and u1.grad.abs().sum() > 0
    assert (w.grad is None) == detach


def test_shape_errors():
    u1, u2, w, projections, q1, q2 = tiny()
    with pytest.raises(ValueError, match="prototypes"):
        projected_scores(u1, w[:, :3], projections)
    with pytest.raises(ValueError, match=r"\(T, B, K\)"):
        ConsensusLoss().from_scores(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.zeros(4, 2), q2)
