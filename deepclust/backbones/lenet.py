"""The LeNet-style 'simp' encoder of HardReg (Mahon & Lukasiewicz, AAAI 2024).

Conv(C, 6, 5) -> BN -> ReLU -> MaxPool(2) -> Conv(6, 16, 5) -> BN -> ReLU -> MaxPool(2) ->
flatten -> Linear(16*s*s, feature_dim), with s = ((S - 4) // 2 - 4) // 2 for S x S inputs:
4 for 28 px (Fashion-MNIST), 5 for 32 px (CIFAR), 13 for 64 px, 21 for 96 px (STL-10).
The convolutions are unpadded, so the input must be at least 12 x 12 px.
"""

from __future__ import annotations

from torch import nn

from .base import Backbone, check_positive_int

MIN_SIZE = 12


def lenet_side(size: int) -> int:
    """Side of the 16-channel map before the Linear layer for an input of ``size`` px."""
    return ((size - 4) // 2 - 4) // 2


class LeNet(Backbone):
    """HardReg's 'simp' encoder: two 5x5 conv-BN-ReLU-maxpool blocks and one Linear layer.

    Args:
        in_channels: input channels.
        image_size: input side S (square images); required, it sizes the Linear layer.
        feature_dim: output width, HardReg's latent size nz (default 128).
    """

    name = "lenet"
    stages_by_layer = True

    def __init__(self, in_channels: int = 1, image_size: int | None = 28, feature_dim: int = 128) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", self.name)
        self.feature_dim = check_positive_int(feature_dim, "feature_dim", self.name)
        if image_size is None:
            raise ValueError(f"{self.name}: image_size is required (it sizes the Linear layer)")
        self.image_size = check_positive_int(image_size, "image_size", self.name)
        if self.image_size < MIN_SIZE:
            raise ValueError(f"{self.name}: image_size={self.image_size} is too small "
                             f"(needs at least {MIN_SIZE} px)")
        side = lenet_side(self.image_size)
        self.net = nn.Sequential(
            nn.Conv2d(self.in_channels, 6, 5), nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(1), nn.Linear(16 * side * side, self.feature_dim),
        )

    def _check_sample(self, shape):
        if shape[1:] != (self.image_size, self.image_size):
            self._fail(shape, f"{self.image_size}x{self.image_size} px images (the Linear layer is "
                              f"sized for them), got {shape[1]}x{shape[2]}")

    def forward(self, x):
        self._check_batch(x)
        return self.net(x)
