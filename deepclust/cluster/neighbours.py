"""Nearest neighbours under cosine similarity, in row blocks that keep memory bounded."""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Elements of one row block's similarity matrix (2^26 float32: 256 MB).
BLOCK_ELEMENTS = 1 << 26


def nearest_neighbours(points: torch.Tensor, k: int, *, chunk_size: int | None = None) -> torch.Tensor:
    """(N, k) indices of each row's k most cosine-similar other rows of the (N, D) ``points``,
    the most similar first; a row is never its own neighbour. ``chunk_size`` rows are compared
    with all rows at a time (default: as many as keep the block near 256 MB)."""
    if points.ndim != 2:
        raise ValueError(f"nearest neighbours need (N, D) points, got shape {tuple(points.shape)}")
    n = points.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"nearest neighbours need 1 <= k < number of points ({n}), got k={k!r}")
    units = F.normalize(points.float(), dim=1)
    chunk_size = chunk_size or max(1, BLOCK_ELEMENTS // n)
    blocks = []
    for start in range(0, n, chunk_size):
        similarity = units[start:start + chunk_size] @ units.T
        rows = torch.arange(similarity.shape[0], device=units.device)
        similarity[rows, rows + start] = -float("inf")
        blocks.append(similarity.topk(k, dim=1).indices)
    return torch.cat(blocks)
