import pytest
import torch

from deepclust.backbones import (
    MLP, Conv1DNet, ResNet, SmallCNN, build_backbone, list_backbones,
)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_list_backbones():
    assert list_backbones() == sorted(
        ["resnet18", "resnet34", "resnet50", "small_cnn", "mlp", "conv1d", "lenet"])


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'.*resnet18.*small_cnn"):
        build_backbone("vgg")


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="does not accept option.*'widht'"):
        build_backbone("small_cnn", 1, 28, widht=2)
    with pytest.raises(ValueError, match="stem must be one of"):
        build_backbone("resnet18", 3, 32, stem="tiny")


# Known counts: torchvision-style ResNet totals minus the 1000-way fc (512*1000+1000 = 513,000
# for resnet18/34, 2048*1000+1000 = 2,049,000 for resnet50): 11,689,512 - 513,000,
# 21,797,672 - 513,000, 25,557,032 - 2,049,000.
@pytest.mark.parametrize("name,count", [
    ("resnet18", 11_176_512), ("resnet34", 21_284_672), ("resnet50", 23_508_032),
])
def test_resnet_body_parameter_counts(name, count):
    assert n_params(build_backbone(name, 3, stem="imagenet")) == count


def test_resnet_cifar_stem_parameter_difference():
    # the stems differ only in the first conv: 3*64*7*7 vs 3*64*3*3 weights
    imagenet = n_params(build_backbone("resnet18", 3, stem="imagenet"))
    cifar = n_params(build_backbone("resnet18", 3, stem="cifar"))
    assert imagenet - cifar == 3 * 64 * (49 - 9)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_cifar_stem_32px(name, dim, channels):
    net = build_backbone(name, channels, image_size=32)
    assert isinstance(net, ResNet) and net.stem_type == "cifar"
    out = net(torch.rand(2, channels, 32, 32))
    assert out.shape == (2, dim) and net.feature_dim == dim


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_imagenet_stem_64px(channels):
    net = build_backbone("resnet18", channels, image_size=64, stem="imagenet")
    assert net.stem_type == "imagenet"
    out = net(torch.rand(2, channels, 64, 64))
    assert out.shape == (2, 512)


def test_resnet50_imagenet_stem_64px():
    net = build_backbone("resnet50", 3, stem="imagenet")
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 2048)


def test_resnet_auto_stem():
    assert build_backbone("resnet18", 3, image_size=64).stem_type == "cifar"
    assert build_backbone("resnet18", 3, image_size=96).stem_type == "imagenet"
    assert build_backbone("resnet18", 3).stem_type == "imagenet"


def test_resnet_init_and_zero_init_residual():
    net = build_backbone("resnet18", 3, 32)
    bn = net.layer1[0].bn2
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    net = build_backbone("resnet50", 3, 32, zero_init_residual=True)
    assert torch.all(net.layer2[1].bn3.weight == 0)
    assert torch.all(net.layer2[1].bn1.weight == 1)


def test_resnet_wrong_channels():
    net = build_backbone("resnet18", 3, 32)
    with pytest.raises(ValueError, match=r"'resnet18'.*\(1, 32, 32\).*expected 3 channel\(s\), got 1"):
        net(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"'resnet18'.*\(1, 32, 32\).*3 channel"):
        net.check_input((1, 32, 32))


def test_resnet_too_small():
    with pytest.raises(ValueError, match=r"'resnet18'.*\(3, 4, 4\).*at least 8x8.*cifar"):
        build_backbone("resnet18", 3, 32).check_input((3, 4, 4))
    net = build_backbone("resnet18", 3, stem="imagenet")
    with pytest.raises(ValueError, match=r"'resnet18'.*\(3, 16, 16\).*at least 32x32.*imagenet"):
        net(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="image_size=16 is too small"):
        build_backbone("resnet18", 3, 16, stem="imagenet")


def test_resnet_wrong_rank():
    net = build_backbone("resnet18", 3, 32)
    with pytest.raises(ValueError, match=r"'resnet18'.*rank 4.*\(3, 32, 32\)"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"'resnet18'.*3 dimensions"):
        net.check_input((3, 32))


def test_resnet_gradients_flow():
    net = build_backbone("resnet18", 1, 16)
    x = torch.rand(4, 1, 16, 16, requires_grad=True)
    net(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())
    assert net.stem[0].weight.grad.abs().sum() > 0


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


def test_mlp_inferred_and_explicit_input_dim():
    net = build_backbone("mlp", 1, 28)
    assert isinstance(net, MLP) and net.input_dim == 784 and net.feature_dim == 256
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 256)
    net = build_backbone("mlp", input_dim=10, hidden_dims=(16,), feature_dim=4)
    assert net(torch.rand(5, 10)).shape == (5, 4)
    # Linear-BN-ReLU per hidden layer, final Linear
    kinds = [type(m).__name__ for m in net.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear"]


def test_mlp_errors():
    with pytest.raises(ValueError, match="give input_dim, or image_size"):
        build_backbone("mlp")
    with pytest.raises(ValueError, match="input_dim=100 disagrees"):
        build_backbone("mlp", 1, 28, input_dim=100)
    net = build_backbone("mlp", 1, 28)
    with pytest.raises(ValueError, match=r"'mlp'.*\(3, 28, 28\).*784 values.*got 2352"):
        net(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"'mlp'.*batch"):
        net(torch.rand(784))


def test_mlp_gradients_flow():
    net = build_backbone("mlp", input_dim=12, hidden_dims=(8, 8), feature_dim=3)
    x = torch.rand(4, 12, requires_grad=True)
    net(x).sum().backward()
    assert x.grad.abs().sum() > 0


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


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_in_channels(bad):
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        build_backbone("small_cnn", bad, 28)


def test_autocast_cpu_bfloat16():
    net = build_backbone("small_cnn", 1, 28).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 256) and torch.isfinite(out.float()).all()
