"""A user's own network as a backbone: any ``nn.Module`` wrapped in :class:`ModuleBackbone`, and the
build context through which an estimator hands its ``backbone=`` module to the method's network.
"""

from __future__ import annotations

import contextlib
import copy
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from deepclust.module_state import evaluation_mode

from .base import Backbone, check_positive_int

#: The backbone name standing for the ``nn.Module`` given to an estimator (``backbone=module``).
MODULE = "module"


class ModuleBackbone(Backbone):
    """Any ``nn.Module`` used as a backbone.

    The contract: ``network(x)`` maps a float batch ``(B, C, H, W)`` — the images in [0, 1] after
    the method's transforms (resized to ``augmentation.image_size``, normalised when
    ``augmentation.normalize`` is set) — to features ``(B, D)``. ``feature_dim`` is ``D``: the
    network's own int ``feature_dim`` (or ``num_features``, timm's name) when it has one, else
    found by :meth:`check_input`. :meth:`check_input` runs the network's own ``check_input`` when it
    has one, and one trial forward pass on a batch of two zero samples (eval mode, no gradients)
    per sample shape, which must give ``(2, D)``; any failure raises ``ValueError`` naming the
    backbone, the shape and what went wrong.

    ``stages`` names the network's submodules that begin its stages (``backbone.freeze: N``);
    default: its top-level children that hold parameters. The weights of ``backbone.weights`` are
    those of ``network`` (a state dict saved from the user's module itself).
    """

    input_rank = None

    def __init__(self, network: nn.Module, name: str, in_channels: int, feature_dim: int | None = None,
                 stages: Sequence[str] | None = None) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(f"backbone '{name}' must be a torch.nn.Module, got {type(network).__name__}")
        self.network = network
        self.name = name
        self.in_channels = int(in_channels)
        if feature_dim is None:  # the network's own width, if it declares one
            feature_dim = next((getattr(network, key) for key in ("feature_dim", "num_features")
                                if isinstance(getattr(network, key, None), int)), None)
        if feature_dim is not None:  # else it is set by the first check_input
            self.feature_dim = check_positive_int(feature_dim, "feature_dim", name)
        self.stages = None if stages is None else [str(stage) for stage in stages]
        self.checked_shapes: set[tuple[int, ...]] = set()

    def stage_names(self) -> list[str]:
        if self.stages is not None:
            return [f"network.{stage}" for stage in self.stages]
        return [f"network.{name}" for name, child in self.network.named_children()
                if any(True for _ in child.parameters())]

    def check_input(self, shape: Sequence[int]) -> None:
        shape = tuple(int(s) for s in shape)
        if shape in self.checked_shapes:
            return
        own_check = getattr(self.network, "check_input", None)
        if callable(own_check):
            own_check(shape)
        parameter = next(self.network.parameters(), None)
        sample = torch.zeros(2, *shape, device=None if parameter is None else parameter.device)
        try:
            with torch.no_grad(), evaluation_mode(self.network):
                output = self.network(sample)
        except Exception as error:  # whatever the user's network raises
            self._fail(shape, f"a sample it can encode; a trial forward pass on zeros of shape {tuple(sample.shape)} "
                              f"failed: {type(error).__name__}: {error}")
        self._check_output(output, shape)
        self.feature_dim = int(output.shape[1])
        self.checked_shapes.add(shape)

    def _check_output(self, output, shape: tuple[int, ...]) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 2:
            seen = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
            self._fail(shape, f"the network to return features (B, D) for a batch (B, *sample), it returned {seen}")
        declared = getattr(self, "feature_dim", None)
        if declared is not None and output.shape[1] != declared:
            self._fail(shape, f"{declared} features (its feature_dim), the network returned {output.shape[1]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.network(x)
        if not isinstance(output, torch.Tensor) or output.dim() != 2:
            self._check_output(output, tuple(x.shape[1:]))
        return output


def as_backbone(network, name: str, in_channels: int) -> Backbone:
    """``network`` itself when it is a :class:`Backbone`, else wrapped in :class:`ModuleBackbone`."""
    if isinstance(network, Backbone):
        return network
    if not isinstance(network, nn.Module):
        raise ValueError(f"the builder of backbone '{name}' must return a torch.nn.Module, "
                         f"it returned {type(network).__name__}")
    return ModuleBackbone(network, name, in_channels)


@dataclass(frozen=True)
class BuildContext:
    """What building a backbone takes besides the configuration.

    module:       the ``nn.Module`` behind backbone name :data:`MODULE` (an estimator's ``backbone=``);
                  each build uses a deep copy, so the given module itself is never trained.
    load_weights: read ``backbone.weights`` (a fresh fit); False when the network's parameters come
                  from a checkpoint or a saved estimator instead (resume, load).
    """

    module: nn.Module | None = None
    load_weights: bool = True


_BUILD: ContextVar[BuildContext] = ContextVar("deepclust_backbone_build", default=BuildContext())


@contextlib.contextmanager
def backbone_build(module: nn.Module | None = None, *, load_weights: bool = True) -> Iterator[BuildContext]:
    """Build the backbones of the block with ``module`` behind the name :data:`MODULE` and with or
    without reading ``backbone.weights`` (:class:`BuildContext`)."""
    token = _BUILD.set(BuildContext(module, load_weights))
    try:
        yield _BUILD.get()
    finally:
        _BUILD.reset(token)


def current_build() -> BuildContext:
    """The :class:`BuildContext` of the innermost :func:`backbone_build` (default: no module, load weights)."""
    return _BUILD.get()


def supplied_module(in_channels: int) -> Backbone:
    """A copy of the module given to :func:`backbone_build`, as a backbone."""
    module = current_build().module
    if module is None:
        raise ValueError(f"backbone '{MODULE}' stands for an nn.Module given to the estimator (backbone=module); "
                         "none was given here — a run's config.yaml alone cannot rebuild it, pass the module again")
    return as_backbone(copy.deepcopy(module), f"{MODULE} {type(module).__name__}", in_channels)
