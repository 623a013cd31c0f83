"""The reconstruction loss of an autoencoder, as N2D trains it.

Used by the method described in docs/methods/ae-umap-gmm.md.
"""
from __future__ import annotations

import torch
from torch import nn


class ReconstructionLoss(nn.Module):
    """L = 1/(B·D) Σ_i ‖x_i − x̂_i‖²: the mean squared error over the batch and the D input values.

    N2D (McConville, Santos-Rodriguez, Piechocki & Craddock, *N2D: (Not Too) Deep Clustering via
    Clustering the Local Manifold of an Autoencoded Embedding*, ICPR 2020) first trains an
    autoencoder x̂ = g(f(x)) on the reconstruction error of the raw inputs alone, then clusters the
    codes f(x); the authors' code (rymc/n2d) minimises that error as this mean squared error (Keras
    loss ``"mse"``). ``forward(reconstruction, inputs)`` takes two tensors of the same shape
    (B, ...); computed in float32.
    """

    def forward(self, reconstruction: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if reconstruction.shape != inputs.shape:
            raise ValueError(f"reconstruction of shape {tuple(reconstruction.shape)} does not match the inputs' "
                             f"shape {tuple(inputs.shape)}")
        return (reconstruction.float() - inputs.float()).pow(2).mean()
