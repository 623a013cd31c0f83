"""A 1-D CNN for multichannel sensor windows of shape (B, C, L)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import Backbone, check_positive_int


class Conv1DNet(Backbone):
    """Conv1d-BN-ReLU-MaxPool(2) per entry of ``hidden_channels``, then Conv1d-BN-ReLU to
    ``feature_dim`` channels and adaptive average pooling over time.

    Args:
        in_channels: sensor channels C.
        image_size: accepted for a uniform builder signature; for this backbone it is the
            window length L and is checked against the minimum length.
        feature_dim: output width (default 128).
        hidden_channels: widths of the pooled blocks (default ``(64, 128)``).
        kernel_size: odd temporal kernel size (default 5).
    """

    name = "conv1d"
    stages_by_layer = True
    input_rank = 2

    def __init__(self, in_channels: int = 3, image_size: int | None = None,
                 feature_dim: int = 128, hidden_channels: Sequence[int] = (64, 128),
                 kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", self.name)
        self.feature_dim = check_positive_int(feature_dim, "feature_dim", self.name)
        kernel_size = check_positive_int(kernel_size, "kernel_size", self.name)
        if kernel_size % 2 == 0:
            raise ValueError(f"{self.name}: kernel_size must be odd, got {kernel_size}")
        hidden = [check_positive_int(h, "hidden_channels entry", self.name)
                  for h in hidden_channels]
        self.min_length = 2 ** len(hidden)
        if image_size is not None:
            image_size = check_positive_int(image_size, "image_size (window length)", self.name)
            if image_size < self.min_length:
                raise ValueError(f"{self.name}: window length {image_size} is too short "
                                 f"(needs at least {self.min_length})")
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        cin = self.in_channels
        for h in hidden:
            layers += [nn.Conv1d(cin, h, kernel_size, padding=pad, bias=False),
                       nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.MaxPool1d(2)]
            cin = h
        layers += [nn.Conv1d(cin, self.feature_dim, kernel_size, padding=pad, bias=False),
                   nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _check_sample(self, shape):
        if shape[1] < self.min_length:
            self._fail(shape, f"windows of at least {self.min_length} time steps, got {shape[1]}")

    def forward(self, x):
        self._check_batch(x)
        return self.pool(self.features(x)).flatten(1)
