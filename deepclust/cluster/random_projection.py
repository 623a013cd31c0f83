"""Fixed Gaussian random projections of an embedding space (ConCURL's representation variations).

ConCURL (Deshmukh et al., "Representation Learning for Clustering via Building Consensus",
arXiv 2105.01289) varies the representation space with T random linear maps R_t ∈ R^{p×d}
drawn like scikit-learn's ``GaussianRandomProjection``: entries i.i.d. N(0, 1/p). Each matrix
has its own seed, so the set is reproducible; the matrices live in a registered buffer so a
checkpoint restores them (also after a per-epoch redraw).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["RandomProjections", "gaussian_random_matrix"]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"random projections: {name} must be a positive integer, got {value!r}")
    return value


def gaussian_random_matrix(n_components: int, n_features: int, seed: int) -> torch.Tensor:
    """A (n_components, n_features) float32 matrix with entries N(0, 1/n_components), drawn on
    the CPU from a generator seeded with ``seed`` (the same matrix on every machine)."""
    _positive_int(n_components, "n_components")
    _positive_int(n_features, "n_features")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n_components, n_features, generator=generator) / n_components ** 0.5


class RandomProjections(nn.Module):
    """T Gaussian random projections R^d → R^p held in the buffer ``matrices`` (T, p, d).

    Matrix t is drawn with seed ``first_seed + t``; :meth:`redraw` replaces the set with the
    matrices of another first seed (ConCURL's ``reinit_transforms``, once per epoch).
    """

    def __init__(self, n_transforms: int, projection_dim: int, input_dim: int, seed: int = 0):
        super().__init__()
        self.n_transforms = _positive_int(n_transforms, "n_transforms")
        self.projection_dim = _positive_int(projection_dim, "projection_dim")
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.register_buffer("matrices", torch.empty(n_transforms, projection_dim, input_dim))
        self.redraw(seed)

    @torch.no_grad()
    def redraw(self, first_seed: int) -> None:
        """Replace the matrices by those of seeds ``first_seed, …, first_seed + T − 1``."""
        drawn = torch.stack([gaussian_random_matrix(self.projection_dim, self.input_dim, first_seed + t)
                             for t in range(self.n_transforms)])
        self.matrices.copy_(drawn.to(self.matrices.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(…, d) → (T, …, p): every projection R_t x."""
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"random projections expect inputs of size {self.input_dim} in the last "
                             f"dimension, got shape {tuple(x.shape)}")
        return torch.einsum("tpd,...d->t...p", self.matrices.to(x.dtype), x)

    def extra_repr(self) -> str:
        return f"n_transforms={self.n_transforms}, {self.input_dim} -> {self.projection_dim}"
