"""The small CNN (deepclust.backbones.small_cnn)."""
import pytest
import torch

from deepclust.backbones import SmallCNN, build_backbone


@pytest.mark.parametrize("size", [16, 28, 32])
def test_small_cnn_shapes(size):
    net = build_backbone("small_cnn", 1, size)
    assert isinstance(net, SmallCNN)
    assert net(torch.rand(3, 1, size, size)).shape == (3, 256) and net.feature_dim == 256


def test_small_cnn_width_and_rgb():
    net = build_backbone("small_cnn", 3, 32, width=0.5)
    assert net.feature_dim == 128
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="width must be a positive number"):
        build_backbone("small_cnn", 3, 32, width=0)


def test_small_cnn_errors():
    net = build_backbone("small_cnn", 1, 28)
    with pytest.raises(ValueError, match=r"'small_cnn'.*\(3, 28, 28\).*1 channel"):
        net(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"'small_cnn'.*\(1, 8, 8\).*at least 16x16"):
        net(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"'small_cnn'.*rank 4.*\(2, 28, 28\)"):
        net(torch.rand(2, 28, 28))


def test_small_cnn_gradients_flow():
    net = build_backbone("small_cnn", 1, 28)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    net(x).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_autocast_cpu_bfloat16():
    net = build_backbone("small_cnn", 1, 28).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 256) and torch.isfinite(out.float()).all()


def test_small_cnn_depth_adds_shape_keeping_layers_per_stage():
    shallow, deep = build_backbone("small_cnn", 1, 28, width=0.5), build_backbone("small_cnn", 1, 28, width=0.5, depth=2)
    convs = [m for m in deep.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (1, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    # the default keeps the four-layer network and its parameter names (saved weights still load)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in shallow.modules()) == 4
    assert list(shallow.state_dict()) == list(build_backbone("small_cnn", 1, 28, width=0.5).state_dict())
    assert deep(torch.rand(2, 1, 28, 28)).shape == (2, 128) and len(deep.stage_names()) == 8
    with pytest.raises(ValueError, match="small_cnn: depth must be a positive int, got 0"):
        build_backbone("small_cnn", 1, 28, depth=0)
