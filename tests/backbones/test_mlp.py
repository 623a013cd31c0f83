"""The MLP encoder (deepclust.backbones.mlp)."""
import pytest
import torch

from deepclust.backbones import MLP, build_backbone


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
