"""The 1-D CNN for sensor windows (deepclust.backbones.conv1d)."""
import pytest
import torch

from deepclust.backbones import Conv1DNet, build_backbone


def test_conv1d_shapes_and_gradients():
    net = build_backbone("conv1d", in_channels=6, image_size=64)
    assert isinstance(net, Conv1DNet) and net.feature_dim == 128
    x = torch.rand(4, 6, 64, requires_grad=True)
    out = net(x)
    assert out.shape == (4, 128)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    net = build_backbone("conv1d", 3, feature_dim=32, hidden_channels=(8, 16, 16))
    assert net(torch.rand(2, 3, 50)).shape == (2, 32)


def test_conv1d_errors():
    net = build_backbone("conv1d", 6)
    with pytest.raises(ValueError, match=r"'conv1d'.*\(3, 64\).*6 channel"):
        net(torch.rand(2, 3, 64))
    with pytest.raises(ValueError, match=r"'conv1d'.*rank 3.*\(2, 6, 8, 8\)"):
        net(torch.rand(2, 6, 8, 8))
    with pytest.raises(ValueError, match=r"'conv1d'.*\(6, 2\).*at least 4 time steps"):
        net.check_input((6, 2))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        build_backbone("conv1d", 6, kernel_size=4)
