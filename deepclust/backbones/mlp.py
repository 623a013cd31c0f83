"""A multilayer perceptron encoder on flattened inputs (e.g. raw pixels or precomputed features)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .base import Backbone, check_positive_int


class MLP(Backbone):
    """Flatten, then Linear-BN-ReLU for each hidden layer and a final Linear to ``feature_dim``.

    Args:
        in_channels: channels of an image input (used only to infer ``input_dim``).
        image_size: if given with ``in_channels``, ``input_dim`` defaults to
            ``in_channels * image_size * image_size``.
        input_dim: number of input values per sample (required unless inferred).
        hidden_dims: widths of the hidden layers (default ``(512, 512)``; may be empty).
        feature_dim: output width (default 256).
    """

    name = "mlp"
    stages_by_layer = True
    input_rank = None

    def __init__(self, in_channels: int = 1, image_size: int | None = None,
                 input_dim: int | None = None, hidden_dims: Sequence[int] = (512, 512),
                 feature_dim: int = 256) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", self.name)
        inferred = None
        if image_size is not None:
            image_size = check_positive_int(image_size, "image_size", self.name)
            inferred = self.in_channels * image_size * image_size
        if input_dim is None:
            if inferred is None:
                raise ValueError(f"{self.name}: give input_dim, or image_size (with in_channels) "
                                 f"to infer it")
            input_dim = inferred
        input_dim = check_positive_int(input_dim, "input_dim", self.name)
        if inferred is not None and inferred != input_dim:
            raise ValueError(
                f"{self.name}: input_dim={input_dim} disagrees with in_channels*image_size^2="
                f"{self.in_channels}*{image_size}^2={inferred}"
            )
        hidden = [check_positive_int(h, "hidden_dims entry", self.name) for h in hidden_dims]
        self.input_dim = input_dim
        self.feature_dim = check_positive_int(feature_dim, "feature_dim", self.name)
        layers: list[nn.Module] = [nn.Flatten(1)]
        cin = input_dim
        for h in hidden:
            layers += [nn.Linear(cin, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            cin = h
        layers.append(nn.Linear(cin, self.feature_dim))
        self.net = nn.Sequential(*layers)

    def _expected_layout(self) -> str:
        return f"{self.input_dim} values in total"

    def check_input(self, shape):
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if n != self.input_dim:
            self._fail(shape, f"{self.input_dim} values per sample once flattened, got {n}")

    def _check_batch(self, x):
        if x.dim() < 2:
            raise ValueError(f"backbone '{self.name}' expects a batch (B, ...), "
                             f"got shape {tuple(x.shape)}")
        self.check_input(x.shape[1:])

    def forward(self, x):
        self._check_batch(x)
        return self.net(x)
