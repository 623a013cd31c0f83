"""A compact CNN for small images (28x28 MNIST-like, 32x32 CIFAR-like).

Four stages of 3x3 conv-BN-ReLU layers with 32/64/128/256 channels (times ``width``), ``depth``
layers each (default 1); the first layer of each of the last three stages has stride 2, so a
28x28 input is reduced to 4x4 before adaptive average pooling. Any input of at least 16x16 works.
"""

from __future__ import annotations

from torch import nn

from .base import Backbone, check_positive_int

MIN_SIZE = 16


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(Backbone):
    """Compact conv net: feature_dim = round(256 * width).

    Args:
        in_channels: input channels.
        image_size: optional expected size, checked against the 16 px minimum.
        width: channel multiplier (> 0) applied to (32, 64, 128, 256).
        depth: conv-BN-ReLU layers per stage (>= 1); the ones after a stage's first keep its
            shape.
    """

    name = "small_cnn"
    stages_by_layer = True

    def __init__(self, in_channels: int = 1, image_size: int | None = None,
                 width: float = 1.0, depth: int = 1) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", self.name)
        if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
            raise ValueError(f"{self.name}: width must be a positive number, got {width!r}")
        depth = check_positive_int(depth, "depth", self.name)
        if image_size is not None:
            image_size = check_positive_int(image_size, "image_size", self.name)
            if image_size < MIN_SIZE:
                raise ValueError(f"{self.name}: image_size={image_size} is too small "
                                 f"(needs at least {MIN_SIZE} px)")
        chans = [max(1, int(round(c * width))) for c in (32, 64, 128, 256)]
        layers = []
        for cin, cout, stride in zip([self.in_channels, *chans[:-1]], chans, (1, 2, 2, 2)):
            layers += _block(cin, cout, stride)
            for _ in range(depth - 1):
                layers += _block(cout, cout, 1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = chans[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _check_sample(self, shape):
        h, w = shape[1], shape[2]
        if h < MIN_SIZE or w < MIN_SIZE:
            self._fail(shape, f"images of at least {MIN_SIZE}x{MIN_SIZE} px, got {h}x{w}")

    def forward(self, x):
        self._check_batch(x)
        return self.pool(self.features(x)).flatten(1)
