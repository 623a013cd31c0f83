"""Building blocks of the augmentation pipelines: input checks, normalisation, resize."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Sequence

import torch
from kornia.geometry.transform import resize as _kornia_resize
from torch import nn


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """Convert a uint8 image tensor (values 0..255) to float32 in [0, 1] on the same device."""
    if not isinstance(images_uint8, torch.Tensor):
        raise ValueError(f"to_float: expected a torch.Tensor, got {type(images_uint8).__name__}")
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"to_float: expected a uint8 tensor, got dtype {images_uint8.dtype}")
    return images_uint8.to(torch.float32).div_(255.0)


def autocast_off(device: torch.device):
    """Context that disables autocast on ``device`` (augmentations always run in float32)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        return contextlib.nullcontext()


def check_image_size(image_size, owner: str) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise ValueError(f"{owner}: image_size must be an int, got {image_size!r}")
    if image_size < 8:
        raise ValueError(f"{owner}: image_size must be at least 8, got {image_size}")
    return int(image_size)


def check_channels(channels, owner: str, colour: bool) -> int:
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(f"{owner}: channels must be a positive int, got {channels!r}")
    if colour and channels not in (1, 3):
        raise ValueError(f"{owner}: channels must be 1 (grey) or 3 (RGB) for this pipeline, "
                         f"got {channels}")
    return int(channels)


def _as_stats(value, name: str, channels: int, owner: str) -> torch.Tensor:
    if isinstance(value, numbers.Real):
        value = [float(value)]
    elif isinstance(value, torch.Tensor):
        value = value.detach().flatten().tolist()
    elif isinstance(value, Sequence) and not isinstance(value, str):
        value = [float(v) for v in value]
    else:
        raise ValueError(f"{owner}: {name} must be a number or a sequence of numbers, "
                         f"got {value!r}")
    if len(value) == 1:
        value = value * channels
    if len(value) != channels:
        raise ValueError(f"{owner}: {name} has {len(value)} entries, expected 1 or "
                         f"channels={channels}")
    return torch.tensor(value, dtype=torch.float32).view(1, channels, 1, 1)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean/std follow the input's device."""

    def __init__(self, mean, std, channels: int, owner: str = "normalize") -> None:
        super().__init__()
        mean_t = _as_stats(mean, "mean", channels, owner)
        std_t = _as_stats(std, "std", channels, owner)
        if (std_t <= 0).any():
            raise ValueError(f"{owner}: std must be > 0, got {std_t.flatten().tolist()}")
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device, x.dtype)) / self.std.to(x.device, x.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ResizeCenter(nn.Module):
    """Deterministic resize to ``size x size``: a square image is resized directly; otherwise
    the short side is resized to ``size`` and the centre ``size x size`` is kept. Images
    already at the size pass unchanged. Antialiased when downscaling."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = self.size
        if (h, w) == (s, s):
            return x
        if h == w:
            return _kornia_resize(x, (s, s), antialias=s < h)
        x = _kornia_resize(x, s, side="short", antialias=s < min(h, w))
        h, w = x.shape[-2:]
        top, left = (h - s) // 2, (w - s) // 2
        return x[..., top:top + s, left:left + s]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ViewPipeline(nn.Module):
    """A batched augmentation (or evaluation) pipeline.

    ``forward(x)`` takes ``x`` of shape ``(B, C, H, W)``: float in [0, 1] (any float dtype) or
    uint8 (converted with :func:`to_float`), on any device. It returns float32
    ``(B, C, S, S)`` on the same device: the random ops (kornia, fresh parameters per sample
    drawn from torch's global RNG), a deterministic resize to ``S`` if the ops left another
    size, clamping to [0, 1], then normalisation if mean/std were given. Autocast is disabled inside.

    Attributes:
        name: the pipeline name.
        image_size: output size ``S``.
        channels: expected input channels.
        config: the resolved parameters (for logging / reproducibility).
    """

    def __init__(self, name: str, image_size: int, channels: int, ops: Sequence[nn.Module],
                 mean=None, std=None, config: dict | None = None) -> None:
        super().__init__()
        self.name = name
        self.image_size = image_size
        self.channels = channels
        self.config = dict(config or {})
        self.ops = nn.Sequential(*ops)
        self.resize = ResizeCenter(image_size)
        if (mean is None) != (std is None):
            raise ValueError(f"augmentation '{name}': give both mean and std, or neither "
                             f"(got mean={mean!r}, std={std!r})")
        self.normalize = (Normalize(mean, std, channels, f"augmentation '{name}'")
                          if mean is not None else nn.Identity())

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"augmentation '{self.name}': expected a torch.Tensor batch, "
                             f"got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"augmentation '{self.name}': expected a batch of shape "
                             f"(B, {self.channels}, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"augmentation '{self.name}': expected {self.channels} channel(s) "
                             f"(B, {self.channels}, H, W), got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            return to_float(x)
        if not x.is_floating_point():
            raise ValueError(f"augmentation '{self.name}': expected a float batch in [0, 1] or "
                             f"uint8, got dtype {x.dtype}")
        return x.to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        with autocast_off(x.device):
            x = self.ops(x)
            x = self.resize(x).clamp(0.0, 1.0)  # blur/resize round-off can leave [0, 1] slightly
            return self.normalize(x)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, image_size={self.image_size}, channels={self.channels}"
