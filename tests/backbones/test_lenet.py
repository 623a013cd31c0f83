"""HardReg's 'simp' LeNet encoder (deepclust.backbones.lenet; docs/methods/hardreg.md)."""
import pytest
import torch

from deepclust.backbones import LeNet, build_backbone, list_backbones


@pytest.mark.parametrize("size, side", [(28, 4), (32, 5), (64, 13), (96, 21)])
def test_linear_input_matches_the_reference_sides(size, side):
    """The side s of the last feature map: 4 for 28 px, 5 for 32 px, 13 for 64 px, 21 for STL's 96 px."""
    net = build_backbone("lenet", in_channels=3, image_size=size, feature_dim=7)
    linear = net.net[-1]
    assert linear.in_features == 16 * side * side and linear.out_features == 7
    assert net(torch.rand(2, 3, size, size)).shape == (2, 7) and net.feature_dim == 7


def test_layers_follow_the_reference():
    kinds = [type(layer).__name__ for layer in LeNet(1, 28).net]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d",
                     "Flatten", "Linear"]
    convolutions = [layer for layer in LeNet(1, 28).net if isinstance(layer, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convolutions] == [(1, 6, (5, 5)), (6, 16, (5, 5))]


def test_registered_and_checked():
    assert "lenet" in list_backbones()
    with pytest.raises(ValueError, match="28x28 px"):
        LeNet(1, 28)(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        LeNet(1, 8)
    with pytest.raises(ValueError, match="image_size is required"):
        LeNet(1, None)
