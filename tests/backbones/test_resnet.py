"""ResNet-18/34/50 with the CIFAR and ImageNet stems (deepclust.backbones.resnet)."""
import pytest
import torch

from deepclust.backbones import ResNet, build_backbone


def n_params(m):
    return sum(p.numel() for p in m.parameters())


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
