"""Module state handling shared by every layer: train/eval mode and buffers sized at run time."""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn


@contextlib.contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and give it back its train/eval mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def resize_empty_buffers(module: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> None:
    """Give every empty buffer of ``module`` the shape (and dtype) that ``state_dict`` saved for it.

    Buffers sized only once training starts (k-means centroids, pseudo-labels, memory banks) are
    registered empty; before loading a checkpoint into a fresh module they take the saved size.
    """
    for name, buffer in list(module.named_buffers()):
        saved = state_dict.get(prefix + name)
        if buffer.numel() == 0 and saved is not None and saved.shape != buffer.shape:
            owner, _, attribute = name.rpartition(".")
            setattr(module.get_submodule(owner), attribute, torch.empty_like(saved, device=buffer.device))
