"""Batched inference over an in-memory uint8 image tensor."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch

from deepclust.augment import to_float
from deepclust.engine.distributed import broadcast_, gather, is_distributed, shard_range, world_size
from deepclust.engine.model import ClusteringModel
from deepclust.module_state import evaluation_mode


def autocast_context(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when enabled (no loss scaling needed); a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def iterate_images(images: torch.Tensor, batch_size: int, device: torch.device
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float images in [0, 1] on ``device``, indices) over ``images`` in order."""
    for start in range(0, images.shape[0], batch_size):
        indices = torch.arange(start, min(start + batch_size, images.shape[0]))
        batch = images[start:start + batch_size]
        if batch.device != device:
            if device.type == "cuda":
                batch = batch.pin_memory()
            batch = batch.to(device, non_blocking=True)
        yield to_float(batch), indices.to(device)


@torch.no_grad()
def map_images(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
               device: torch.device, amp: bool = False) -> torch.Tensor:
    """Apply ``fn`` batch by batch and concatenate the float32 results on the CPU.

    Under ``torch.distributed`` each process maps its contiguous share of ``images`` and every
    process receives the whole result.
    """
    shared = is_distributed() and images.shape[0] >= world_size()
    start, stop = shard_range(images.shape[0]) if shared else (0, images.shape[0])
    outputs = []
    with autocast_context(device, amp):
        for batch, _ in iterate_images(images[start:stop], batch_size, device):
            output = fn(batch).float()
            outputs.append(output if shared else output.cpu())  # shares are gathered on the device
    if not shared:
        return torch.cat(outputs)
    return gather(torch.cat(outputs)).cpu()


@torch.no_grad()
def predict_labels(model: ClusteringModel, images: torch.Tensor, batch_size: int, device: torch.device,
                   *, refit: bool = False, amp: bool = False, seed: int = 0) -> np.ndarray:
    """Cluster labels for ``images``; with ``refit`` a method that clusters its embeddings (any
    ``label_source`` but ``"head"``) first re-clusters them."""
    with evaluation_mode(model):
        if model.label_source != "head" and refit:
            embeddings = map_images(model.embed, images, batch_size, device, amp)
            labels = model.fit_inference(embeddings.to(device), seed=seed)
            if is_distributed():  # every process clusters the same embeddings; rank 0's result is kept
                broadcast_(labels)
                broadcast_(model.centroids)
            labels = labels.cpu()
        else:
            labels = map_images(model.predict_labels, images, batch_size, device, amp).long()
    return labels.numpy()
