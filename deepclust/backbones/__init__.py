"""Backbones: encoders mapping a batch to flat features ``(B, feature_dim)``.

Every backbone has an int ``feature_dim`` and ``check_input(shape)``, which raises
``ValueError`` (naming the backbone, what it expects and the shape seen) for a sample shape it
cannot encode; ``forward`` runs the same check on the batch shape.

>>> net = build_backbone("resnet18", in_channels=3, image_size=32)   # CIFAR stem
>>> net.feature_dim
512
"""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from .base import Backbone
from .conv1d import Conv1DNet
from .lenet import LeNet
from .mlp import MLP
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .small_cnn import SmallCNN

_REGISTRY: dict[str, Callable[..., Backbone]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "small_cnn": SmallCNN,
    "mlp": MLP,
    "conv1d": Conv1DNet,
    "lenet": LeNet,
}

# keyword arguments each builder accepts besides in_channels / image_size
_RESNET_KWARGS = ("stem", "zero_init_residual")


def _accepted_kwargs(name: str) -> list[str]:
    if name.startswith("resnet"):
        return list(_RESNET_KWARGS)
    params = inspect.signature(_REGISTRY[name]).parameters
    return [p for p in params if p not in ("self", "in_channels", "image_size")]


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`."""
    return sorted(_REGISTRY)


def build_backbone(name: str, in_channels: int = 3, image_size: int | None = None,
                   **kwargs) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: one of :func:`list_backbones`.
        in_channels: input channels (image channels, or sensor channels for ``conv1d``).
        image_size: expected input side in px (window length for ``conv1d``); used by the
            ResNet ``stem="auto"`` choice, to infer the MLP ``input_dim`` and for early
            size checks. Optional.
        **kwargs: backbone options -- ResNet: ``stem`` ("auto" | "cifar" | "imagenet"),
            ``zero_init_residual``; small_cnn: ``width``; mlp: ``input_dim``, ``hidden_dims``,
            ``feature_dim``; conv1d: ``feature_dim``, ``hidden_channels``, ``kernel_size``;
            lenet: ``feature_dim``.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(list_backbones())}")
    accepted = _accepted_kwargs(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"backbone {name!r} does not accept option(s) {unknown}; "
                         f"accepted: {accepted}")
    return _REGISTRY[name](in_channels=in_channels, image_size=image_size, **kwargs)


__all__ = [
    "Backbone", "BasicBlock", "Bottleneck", "Conv1DNet", "LeNet", "MLP", "ResNet", "SmallCNN",
    "build_backbone", "list_backbones", "resnet18", "resnet34", "resnet50",
]
