"""Non-parametric instance discrimination: NCE against a memory bank (ConCURL's exemplar consistency).

Used by the method described in docs/methods/concurl.md.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from deepclust.module_state import resize_empty_buffers


def nce_loss(probabilities: torch.Tensor, n_samples: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE loss of Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", CVPR, Sec. 3.2, Eqs. 5–6) for (B, 1 + k) probabilities P: column 0 is the
    sample's own memory row, columns 1..k its k noise rows drawn with P_n = 1/N:

        L = −(1/B) Σ_i [ log P(i)/(P(i) + k P_n + eps) + Σ_{j ∈ noise_i} log k P_n/(P(j) + k P_n + eps) ].
    """
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"NCE loss expects (B, 1 + k) probabilities with k >= 1, got {tuple(probabilities.shape)}")
    if n_samples < 1:
        raise ValueError(f"NCE loss needs the dataset size n_samples >= 1, got {n_samples}")
    k = probabilities.shape[1] - 1
    noise_mass = k / n_samples                                     # k · P_n
    positive = probabilities[:, 0]
    noise = probabilities[:, 1:]
    data_term = torch.log(positive / (positive + noise_mass + eps))
    noise_term = torch.log(noise_mass / (noise + noise_mass + eps)).sum(dim=1)
    return -(data_term + noise_term).mean()


class NCEMemoryBank(nn.Module):
    """Exemplar consistency of ConCURL (Deshmukh et al., arXiv 2105.01289): instance discrimination
    with a memory bank and NCE (Wu et al. 2018, Sec. 3.1–3.2).

    The bank M (``memory`` buffer, N × D, rows unit-norm, random at start) holds one row per dataset
    sample. For L2-normalised embeddings e (B, D) and the samples' indices i, each e is scored
    against its own row and ``n_noise`` = k rows drawn uniformly:

        P(j) = exp(e·M_j / τ) / Z     (Wu et al. Eq. 4),

    Z estimated once, from the first batch, as mean(exp(e·M_j/τ)) · N (Wu et al. Eq. 7) and kept
    in the ``normaliser`` buffer (0 until estimated). The loss is :func:`nce_loss`. After the
    optimiser step :meth:`update` moves the rows: M_i ← normalise(m M_i + (1 − m) e_i).
    ``memory`` and ``normaliser`` are buffers, so checkpoints restore them.

    Each sample draws its own k noise rows, as Wu et al.'s code. With ``shared_noise`` the samples of
    a batch share one draw of k rows: every sample's noise is still uniform, so the loss has the
    same expectation, and the B·(1 + k) random row reads of the bank, which dominate a CPU step
    for small networks, shrink to B + k and one (B, D) × (D, k) product.
    """

    def __init__(self, dim: int, n_noise: int = 4096, temperature: float = 0.07, momentum: float = 0.5,
                 eps: float = 1e-7, shared_noise: bool = False):
        super().__init__()
        if isinstance(n_noise, bool) or not isinstance(n_noise, int) or n_noise < 1:
            raise ValueError(f"NCE: n_noise (nce_k) must be a positive integer, got {n_noise!r}")
        if not temperature > 0:
            raise ValueError(f"NCE: temperature must be positive, got {temperature!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"NCE: memory momentum must be in [0, 1], got {momentum!r}")
        self.dim = int(dim)
        self.n_noise = n_noise
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.shared_noise = bool(shared_noise)
        self.register_buffer("memory", torch.zeros(0, self.dim))
        self.register_buffer("normaliser", torch.zeros(()))

    @property
    def n_samples(self) -> int:
        return int(self.memory.shape[0])

    @torch.no_grad()
    def reset(self, n_samples: int) -> None:
        """A fresh bank of ``n_samples`` random unit rows (uniform in ±1/√(D/3), then normalised) and
        an unestimated Z."""
        if n_samples < 1:
            raise ValueError(f"NCE: the memory bank needs at least one sample, got n_samples={n_samples}")
        bound = 1.0 / math.sqrt(self.dim / 3.0)
        memory = (torch.rand(n_samples, self.dim, device=self.memory.device) * 2.0 - 1.0) * bound
        self.memory = torch.nn.functional.normalize(memory, dim=1)
        self.normaliser.zero_()

    def _check(self, embeddings: torch.Tensor, indices: torch.Tensor) -> None:
        if self.n_samples == 0:
            raise RuntimeError("NCE memory bank is empty; call reset(n_samples) before training")
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim or indices.shape != embeddings.shape[:1]:
            raise ValueError(f"NCE expects embeddings (B, {self.dim}) and indices (B,), got "
                             f"{tuple(embeddings.shape)} and {tuple(indices.shape)}")

    def probabilities(self, embeddings: torch.Tensor, indices: torch.Tensor,
                      noise_indices: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 1 + k) P(j) of each sample's own row (column 0) and its noise rows.

        ``noise_indices`` fixes the noise rows (tests): (B, k), one set per sample, or (k,), one set
        shared by the batch. By default they are drawn uniformly on the bank's device from
        ``generator`` (torch's global stream when None), shared when the bank was built so.
        """
        self._check(embeddings, indices)
        batch = embeddings.shape[0]
        if noise_indices is None:
            shape = (self.n_noise,) if self.shared_noise else (batch, self.n_noise)
            noise_indices = torch.randint(0, self.n_samples, shape, device=self.memory.device, generator=generator)
        if noise_indices.ndim not in (1, 2) or (noise_indices.ndim == 2 and noise_indices.shape[0] != batch):
            raise ValueError(f"NCE: noise indices must be (B, k) = ({batch}, k) or (k,), "
                             f"got {tuple(noise_indices.shape)}")
        noise_indices = noise_indices.to(self.memory.device)
        embeddings = embeddings.to(self.memory.dtype)
        own = self.memory.index_select(0, indices.to(self.memory.device))
        own_dots = (own * embeddings).sum(dim=1, keepdim=True)
        if noise_indices.ndim == 1:
            noise_dots = embeddings @ self.memory.index_select(0, noise_indices).T
        else:
            noise_rows = self.memory.index_select(0, noise_indices.reshape(-1)).view(batch, -1, self.dim)
            noise_dots = torch.bmm(noise_rows, embeddings.unsqueeze(2)).squeeze(2)
        scores = torch.exp(torch.cat([own_dots, noise_dots], dim=1) / self.temperature)
        if float(self.normaliser) <= 0.0:
            self.normaliser.fill_(float(scores.detach().mean()) * self.n_samples)
        return scores / self.normaliser

    def forward(self, embeddings: torch.Tensor, indices: torch.Tensor,
                noise_indices: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return nce_loss(self.probabilities(embeddings, indices, noise_indices, generator), self.n_samples, self.eps)

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, indices: torch.Tensor) -> None:
        """M_i ← normalise(m M_i + (1 − m) e_i) for the batch's samples."""
        self._check(embeddings, indices)
        moved = self.memory[indices] * self.momentum + embeddings.to(self.memory.dtype) * (1.0 - self.momentum)
        self.memory[indices] = torch.nn.functional.normalize(moved, dim=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_empty_buffers(self, state_dict, prefix)  # the bank is sized at fit time
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"n_samples={self.n_samples}, dim={self.dim}, n_noise={self.n_noise}, "
                f"temperature={self.temperature}, momentum={self.momentum}, shared_noise={self.shared_noise}")
