"""Sinkhorn-Knopp equipartition of soft assignments (SwAV; Caron et al., 2020, Sec. 3.1 and
Algorithm 1 of its appendix), shared by ConCURL and HardReg.

Given scores ``s`` (B, K), ``Q = exp(s / ε)`` is viewed as a K × B transport plan, scaled to total
mass 1, then for ``n_iters`` iterations each cluster row is scaled to mass ``w_k`` (default
``1/K``) and each sample column to mass ``1/B``. The result is multiplied by ``B`` so that each
sample's row of the returned (B, K) matrix sums to 1.

Under torch.distributed the methods gather the scores of the global batch first
(:func:`deepclust.engine.distributed.gather`), so every process balances the same global batch.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sinkhorn_knopp"]


# ----------------------------------------------------------------------------- validation
def _check(scores, epsilon, n_iters, cluster_weights):
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dim() != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-D (batch, n_clusters) tensor, got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0 or math.isinf(epsilon):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if isinstance(n_iters, bool) or not isinstance(n_iters, int) or n_iters < 0:
        raise ValueError(f"n_iters must be an integer >= 0, got {n_iters!r}")
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    s = scores.detach().to(dtype)
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores contains NaN/Inf values; expected finite scores")
    k = s.shape[1]
    if cluster_weights is None:
        w = torch.full((k,), 1.0 / k, dtype=dtype, device=s.device)
    else:
        w = torch.as_tensor(cluster_weights).detach().to(device=s.device, dtype=dtype)
        if w.shape != (k,):
            raise ValueError(f"cluster_weights must have shape ({k},) (one per cluster), got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
            raise ValueError(f"cluster_weights must be finite and > 0, got {w.tolist() if k <= 20 else 'values out of range'}")
        w = w / w.sum()
    return s, w


# ----------------------------------------------------------------------------- algorithm
def _plain(s: torch.Tensor, w: torch.Tensor, epsilon: float, n_iters: int) -> torch.Tensor | None:
    """Plain-domain iterations; ``None`` if underflow made the result non-finite."""
    z = s / epsilon
    q = torch.exp(z - z.max()).T  # (K, B)
    b = q.shape[1]
    q /= q.sum()  # total mass 1
    for _ in range(n_iters):
        q *= (w / q.sum(dim=1)).unsqueeze(1)  # cluster k gets mass w_k
        q /= q.sum(dim=0, keepdim=True) * b  # each sample gets mass 1/B
    q *= b
    # A cluster row or sample column that underflowed to 0 gives 0/0 or x/0 above.
    if not bool(torch.isfinite(q).all()):
        return None
    return q.T.contiguous()


def _log(s: torch.Tensor, w: torch.Tensor, epsilon: float, n_iters: int) -> torch.Tensor:
    logq = (s / epsilon).T  # (K, B)
    b = logq.shape[1]
    logq = logq - torch.logsumexp(logq.reshape(-1), dim=0)  # total mass 1
    logw = torch.log(w)
    log_b = math.log(b)
    for _ in range(n_iters):
        logq = logq + (logw - torch.logsumexp(logq, dim=1)).unsqueeze(1)
        logq = logq - (torch.logsumexp(logq, dim=0, keepdim=True) + log_b)
    return torch.exp(logq + log_b).T.contiguous()


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    n_iters: int = 3,
    log_domain: bool = False,
    cluster_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Balanced soft assignments (B, K) from scores (B, K); each row sums to 1.

    Args:
        scores: (B, K) logits/similarities; gradients are not tracked (output is detached).
        epsilon: entropic regularisation ε (temperature of ``exp(s/ε)``).
        n_iters: number of (cluster-row, sample-column) scaling rounds (SwAV uses 3).
        log_domain: iterate on log Q with logsumexp (stable for any scores). The plain
            domain subtracts the global max of s/ε before exp; if exp still underflows a whole
            cluster row or sample column (non-finite result), it falls back to the log domain.
        cluster_weights: optional (K,) positive prior on cluster masses (normalised to sum 1);
            default uniform ``1/K``. With enough iterations column ``k`` of the output sums
            to ``B * w_k``.

    Returns:
        Detached (B, K) tensor on the scores' device, float64 if scores are float64 else float32.
    """
    s, w = _check(scores, epsilon, n_iters, cluster_weights)
    if not log_domain:
        q = _plain(s, w, float(epsilon), n_iters)
        if q is not None:
            return q
    return _log(s, w, float(epsilon), n_iters)
