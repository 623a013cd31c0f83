"""Common base class for backbones: a flat feature vector and a clear input check."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn


#: Attribute set on a BatchNorm layer of a frozen part of a backbone: it keeps its running statistics
#: and normalises with them (eval mode) during training too.
FROZEN_STATISTICS = "frozen_statistics"


class Backbone(nn.Module):
    """An encoder mapping a batch to features of shape ``(B, feature_dim)``.

    Subclasses set ``name``, ``feature_dim``, ``in_channels`` and ``input_rank`` (the rank of
    one sample: 3 for images ``(C, H, W)``, 2 for 1-D signals ``(C, L)``; ``None`` for any) and
    implement :meth:`_check_sample`, which validates one sample's shape and raises
    :class:`ValueError`. :meth:`forward` implementations call :meth:`_check_batch` first, so a
    wrong shape fails with a readable message instead of a shape error deep inside a layer.
    """

    name: str = "backbone"
    feature_dim: int
    in_channels: int
    input_rank: int | None = 3

    #: True for a plain stack of layers: one stage begins at each convolution or linear layer (its
    #: normalisation and activation belong to it); else the stages are the top-level children that
    #: hold parameters, unless :meth:`stage_names` is overridden (ResNet: its four residual stages).
    stages_by_layer: bool = False

    def stage_names(self) -> list[str]:
        """Names of the submodules that begin the backbone's stages, first to last: what
        ``backbone.freeze: N`` counts (it trains the last N stages); see :attr:`stages_by_layer`."""
        if self.stages_by_layer:
            return [name for name, module in self.named_modules()
                    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear))]
        return [name for name, child in self.named_children() if any(True for _ in child.parameters())]

    def train(self, mode: bool = True):
        """Train/eval mode as ``nn.Module.train``, except that normalisation layers marked
        :data:`FROZEN_STATISTICS` (those of a frozen part, ``backbone.freeze``) stay in eval mode."""
        super().train(mode)
        for module in self.modules():
            if getattr(module, FROZEN_STATISTICS, False):
                module.eval()
        return self

    def _fail(self, shape: Sequence[int], expected: str) -> None:
        raise ValueError(
            f"backbone '{self.name}' cannot take input of shape {tuple(shape)} "
            f"(one sample); expected {expected}"
        )

    def _expected_layout(self) -> str:
        if self.input_rank == 3:
            return f"(C, H, W) with C={self.in_channels}"
        if self.input_rank == 2:
            return f"(C, L) with C={self.in_channels}"
        return "a tensor"

    def check_input(self, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` if a sample of ``shape`` (no batch dimension) cannot be encoded."""
        shape = tuple(int(s) for s in shape)
        if self.input_rank is not None and len(shape) != self.input_rank:
            self._fail(shape, f"{self.input_rank} dimensions {self._expected_layout()}, "
                              f"got {len(shape)} dimensions")
        if self.input_rank is not None and shape[0] != self.in_channels:
            self._fail(shape, f"{self.in_channels} channel(s), got {shape[0]}")
        self._check_sample(shape)

    def _check_sample(self, shape: tuple[int, ...]) -> None:  # pragma: no cover - overridden
        pass

    def _check_batch(self, x: torch.Tensor) -> None:
        """Cheap check of a batch's shape, called at the start of ``forward``."""
        if self.input_rank is not None and x.dim() != self.input_rank + 1:
            raise ValueError(
                f"backbone '{self.name}' expects a batch of rank {self.input_rank + 1} "
                f"(B, {self._expected_layout()[1:]}, got a tensor of shape {tuple(x.shape)}"
            )
        if x.dim() < 2:
            raise ValueError(
                f"backbone '{self.name}' expects a batch (B, ...), got shape {tuple(x.shape)}"
            )
        self.check_input(x.shape[1:])


def check_positive_int(value, what: str, owner: str) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``what`` if it is not >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {what} must be a positive int, got {value!r}")
    return int(value)
