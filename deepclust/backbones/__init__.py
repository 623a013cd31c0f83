"""Backbones: encoders mapping a batch to flat features ``(B, feature_dim)``.

Every backbone has an int ``feature_dim`` and ``check_input(shape)``, which raises
``ValueError`` (naming the backbone, what it expects and the shape seen) for a sample shape it
cannot encode; ``forward`` runs the same check on the batch shape.

>>> net = build_backbone("resnet18", in_channels=3, image_size=32)   # CIFAR stem
>>> net.feature_dim
512

Your own network: :func:`register_backbone` makes a builder available by name; an estimator also
takes an ``nn.Module`` instance as ``backbone=`` (name :data:`MODULE` in its configuration); timm's
models are the backbone ``timm`` (``{name: timm, model: resnet18}``, the extra ``timm``). Any
backbone takes the settings ``weights`` (a local state dict), ``strict`` and ``freeze``
(:mod:`deepclust.backbones.weights`).
"""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from .base import Backbone
from .conv1d import Conv1DNet
from .custom import MODULE, ModuleBackbone, as_backbone, backbone_build, supplied_module
from .lenet import LeNet
from .mlp import MLP
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .small_cnn import SmallCNN
from .timm_models import timm_backbone
from .weights import BACKBONE_SETTINGS, load_weights, prepare_backbone, read_state_dict, split_backbone_section

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "small_cnn": SmallCNN,
    "mlp": MLP,
    "conv1d": Conv1DNet,
    "lenet": LeNet,
    "timm": timm_backbone,
}

# keyword arguments each builder accepts besides in_channels / image_size
_RESNET_KWARGS = ("stem", "zero_init_residual")
_BUILT_IN = frozenset(_REGISTRY)


def _accepted_kwargs(name: str) -> list[str] | None:
    """The options backbone ``name`` takes; None: any (its builder has ``**kwargs``)."""
    if name.startswith("resnet") and name in _BUILT_IN:
        return list(_RESNET_KWARGS)
    params = inspect.signature(_REGISTRY[name]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p not in ("self", "in_channels", "image_size")]


def register_backbone(name: str, builder: Callable[..., nn.Module], *, replace: bool = False) -> None:
    """Make ``builder`` the backbone ``name``: ``backbone: {name: NAME, ...}`` in a configuration,
    ``--set backbone.name=NAME``, ``backbone="NAME"`` of an estimator.

    ``builder(in_channels=C, image_size=S, **options)`` returns an ``nn.Module`` mapping float
    images ``(B, C, S, S)`` (in [0, 1] after the method's transforms) to features ``(B, D)``; the
    other keys of the ``backbone`` section are its ``options`` (its keyword parameters, checked by
    name unless it takes ``**kwargs``), besides the settings ``weights``, ``strict`` and ``freeze``
    that every backbone takes. A :class:`Backbone` subclass is used as it is; any other module is
    wrapped in :class:`ModuleBackbone` (``feature_dim`` and ``check_input`` by a trial forward
    pass). A registration lasts for the process: a saved estimator with this backbone loads where
    the registration has run again (put it in the module that defines the builder, and import that).
    ``replace=True`` replaces a registered builder, a built-in one too.
    """
    if not isinstance(name, str) or not name.strip() or name == MODULE:
        raise ValueError(f"backbone name must be a non-empty string other than '{MODULE}' (reserved for an "
                         f"estimator's backbone=nn.Module), got {name!r}")
    if not callable(builder):
        raise ValueError(f"the builder of backbone '{name}' must be callable (a class or a function), got {builder!r}")
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any and not {"in_channels", "image_size"} <= set(params):
        raise ValueError(f"the builder of backbone '{name}' must take the keyword arguments in_channels and "
                         f"image_size; its parameters are ({', '.join(params)})")
    if name in _REGISTRY and _REGISTRY[name] is not builder and not replace:
        raise ValueError(f"backbone '{name}' is already registered ({_REGISTRY[name]!r}); pass replace=True "
                         "to replace it")
    _REGISTRY[name] = builder


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`."""
    return sorted(_REGISTRY)


def build_backbone(name: str, in_channels: int = 3, image_size: int | None = None,
                   **kwargs) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: one of :func:`list_backbones`, or :data:`MODULE`: a copy of the ``nn.Module`` given
            to the enclosing :func:`backbone_build` (an estimator's ``backbone=``).
        in_channels: input channels (image channels, or sensor channels for ``conv1d``).
        image_size: expected input side in px (window length for ``conv1d``); used by the
            ResNet ``stem="auto"`` choice, to infer the MLP ``input_dim`` and for early
            size checks. Optional.
        **kwargs: backbone options -- ResNet: ``stem`` ("auto" | "cifar" | "imagenet"),
            ``zero_init_residual``; small_cnn: ``width``; mlp: ``input_dim``, ``hidden_dims``,
            ``feature_dim``; conv1d: ``feature_dim``, ``hidden_channels``, ``kernel_size``;
            lenet: ``feature_dim``; timm: ``model``, ``options``; a registered builder: its own.
    """
    if name == MODULE:
        if kwargs:
            raise ValueError(f"backbone '{MODULE}' (an estimator's nn.Module) takes no options, got {sorted(kwargs)}")
        return supplied_module(in_channels)
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(list_backbones())} (register your "
                         "own with deepclust.backbones.register_backbone, or give an estimator an nn.Module as "
                         "backbone=)")
    accepted = _accepted_kwargs(name)
    unknown = [] if accepted is None else sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"backbone {name!r} does not accept option(s) {unknown}; "
                         f"accepted: {accepted}")
    return as_backbone(_REGISTRY[name](in_channels=in_channels, image_size=image_size, **kwargs), name, in_channels)


__all__ = [
    "BACKBONE_SETTINGS", "MODULE", "Backbone", "BasicBlock", "Bottleneck", "Conv1DNet", "LeNet", "MLP", "ModuleBackbone",
    "ResNet", "SmallCNN", "backbone_build", "build_backbone", "list_backbones", "load_weights", "prepare_backbone",
    "read_state_dict", "register_backbone", "resnet18", "resnet34", "resnet50", "split_backbone_section",
    "timm_backbone",
]
