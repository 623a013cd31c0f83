"""Batched, on-device view generation with kornia, and the evaluation transform.

>>> aug = build_augmentation("simclr", image_size=32, channels=3)
>>> views = aug(to_float(uint8_batch.to(device)))        # (B, 3, 32, 32), new draw per call

Pipelines take ``(B, C, H, W)`` float batches in [0, 1] (uint8 is converted) on any device and
return float32 ``(B, C, S, S)``; random parameters are drawn per sample from torch's global
RNG, so ``torch.manual_seed`` makes them reproducible. See :mod:`.pipelines` for the ops and
the paper hyper-parameters of each name.
"""

from .core import Normalize, ResizeCenter, ViewPipeline, to_float
from .pipelines import build_augmentation, build_eval_transform, list_augmentations

__all__ = [
    "Normalize", "ResizeCenter", "ViewPipeline", "build_augmentation", "build_eval_transform",
    "list_augmentations", "to_float",
]
