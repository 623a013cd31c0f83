"""Projection, prediction and cluster heads shared by the methods."""
from __future__ import annotations

from torch import nn


def mlp(dims: list[int] | tuple[int, ...], *, batch_norm: bool = True, last_activation: nn.Module | None = None
        ) -> nn.Sequential:
    """Linear layers ``dims[0] → dims[1] → … → dims[-1]``; hidden layers get BatchNorm (optional) + ReLU.

    ``mlp([512, 4096, 256])`` is BYOL's projector: Linear → BN → ReLU → Linear.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(dims)}")
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(dims) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(width_out))
            layers.append(nn.ReLU(inplace=True))
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


def cluster_head(dims: list[int] | tuple[int, ...], *, batch_norm: bool = False) -> nn.Sequential:
    """An MLP ending in a softmax over the last size (the number of clusters)."""
    return mlp(dims, batch_norm=batch_norm, last_activation=nn.Softmax(dim=1))


__all__ = ["cluster_head", "mlp"]
