"""ResNet-18/34/50 encoders (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Written from the paper's description (Table 1 and Sec. 3-4): a stem, four stages of residual
blocks with 64/128/256/512 base channels, stride 2 at the first block of stages 2-4, projection
shortcuts (1x1 conv + BN, option B) whenever the shape changes, and global average pooling.
The 1000-way classifier is not part of the backbone, so the output is the pooled feature
(512-d for BasicBlock networks, 2048-d for Bottleneck networks).

Two stems:

* ``"imagenet"``: 7x7 conv, stride 2 + 3x3 max-pool, stride 2 (as in the paper).
* ``"cifar"``: one 3x3 conv, stride 1, no max-pool -- the usual adaptation for 32x32 inputs used
  by the deep-clustering papers.

In the Bottleneck the stride sits on the 3x3 conv (the common "v1.5" placement); this does not
change the parameter count.
"""

from __future__ import annotations

from torch import nn

from .base import Backbone, check_positive_int

STEMS = ("cifar", "imagenet", "auto")
MIN_SIZE = {"cifar": 8, "imagenet": 32}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (paper Fig. 2, left)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection (paper Fig. 5, right)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def resolve_stem(stem: str, image_size: int | None) -> str:
    """``"auto"`` picks the CIFAR stem for images of at most 64 px, else the ImageNet stem."""
    if stem not in STEMS:
        raise ValueError(f"ResNet: stem must be one of {list(STEMS)}, got {stem!r}")
    if stem == "auto":
        return "cifar" if image_size is not None and image_size <= 64 else "imagenet"
    return stem


class ResNet(Backbone):
    """ResNet encoder returning globally average-pooled features ``(B, feature_dim)``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages.
        in_channels: input channels (any positive number).
        stem: ``"cifar"``, ``"imagenet"`` or ``"auto"`` (resolved with ``image_size``).
        image_size: expected input size; used by ``stem="auto"`` and checked against the
            stem's minimum size (8 px cifar, 32 px imagenet).
        zero_init_residual: initialise the last BN weight of every block to 0, so each
            residual branch starts as the identity (Goyal et al., 2017).
        name: reported in error messages.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        in_channels: int = 3,
        stem: str = "auto",
        image_size: int | None = None,
        zero_init_residual: bool = False,
        name: str = "resnet",
    ) -> None:
        super().__init__()
        self.name = name
        self.in_channels = check_positive_int(in_channels, "in_channels", name)
        if image_size is not None:
            image_size = check_positive_int(image_size, "image_size", name)
        self.stem_type = resolve_stem(stem, image_size)
        self.min_size = MIN_SIZE[self.stem_type]
        if image_size is not None and image_size < self.min_size:
            raise ValueError(
                f"{name}: image_size={image_size} is too small for the '{self.stem_type}' stem "
                f"(needs at least {self.min_size} px)"
            )

        if self.stem_type == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(self.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(
                _conv3x3(self.in_channels, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
            )

        cin = 64
        stages = []
        for i, (width, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, width, stride))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def stage_names(self) -> list[str]:
        """The four residual stages ``layer1``..``layer4`` (the stem comes before them)."""
        return ["layer1", "layer2", "layer3", "layer4"]

    def _check_sample(self, shape):
        h, w = shape[1], shape[2]
        if h < self.min_size or w < self.min_size:
            self._fail(shape, f"images of at least {self.min_size}x{self.min_size} px for the "
                              f"'{self.stem_type}' stem, got {h}x{w}")

    def forward(self, x):
        self._check_batch(x)
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x).flatten(1)


def resnet18(in_channels: int = 3, image_size: int | None = None, **kwargs) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, image_size=image_size,
                  name="resnet18", **kwargs)


def resnet34(in_channels: int = 3, image_size: int | None = None, **kwargs) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, image_size=image_size,
                  name="resnet34", **kwargs)


def resnet50(in_channels: int = 3, image_size: int | None = None, **kwargs) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, image_size=image_size,
                  name="resnet50", **kwargs)
