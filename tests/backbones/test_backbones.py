"""The backbone registry of the package (deepclust/backbones/__init__.py): names, options, registration."""
import pytest
import torch
from torch import nn

import deepclust.backbones as backbones
from deepclust.backbones import Backbone, ModuleBackbone, SmallCNN, build_backbone, list_backbones, register_backbone


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))
    return backbones._REGISTRY


def test_list_backbones():
    assert list_backbones() == sorted(
        ["resnet18", "resnet34", "resnet50", "small_cnn", "mlp", "conv1d", "lenet", "timm"])


def flat_linear(in_channels, image_size, width=6):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, width))


def test_a_registered_builder_of_a_plain_module_gets_feature_dim_and_check_input(registry):
    register_backbone("flat", flat_linear)
    assert "flat" in list_backbones()
    net = build_backbone("flat", 1, 8, width=5)
    assert isinstance(net, ModuleBackbone)
    net.check_input((1, 8, 8))
    assert net.feature_dim == 5 and net(torch.zeros(3, 1, 8, 8)).shape == (3, 5)
    with pytest.raises(ValueError, match=r"backbone 'flat' cannot take input of shape \(1, 9, 9\).*trial forward pass"):
        net.check_input((1, 9, 9))
    with pytest.raises(ValueError, match=r"does not accept option.*'depth'.*\['width'\]"):
        build_backbone("flat", 1, 8, depth=2)


def test_a_builder_with_kwargs_takes_any_option_and_a_backbone_subclass_is_used_as_it_is(registry):
    seen = {}

    def small(in_channels, image_size, **options):
        seen.update(options)
        return SmallCNN(in_channels, image_size)

    register_backbone("small", small)
    net = build_backbone("small", 1, 16, anything=3)
    assert type(net) is SmallCNN and seen == {"anything": 3}


def test_registration_is_checked(registry):
    with pytest.raises(ValueError, match="reserved"):
        register_backbone("module", flat_linear)
    with pytest.raises(ValueError, match="in_channels and image_size"):
        register_backbone("bad", lambda channels: nn.Identity())
    with pytest.raises(ValueError, match="callable"):
        register_backbone("bad", 3)
    register_backbone("flat", flat_linear)
    register_backbone("flat", flat_linear)  # the same builder again: fine
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        register_backbone("flat", lambda in_channels, image_size: nn.Identity())
    register_backbone("flat", SmallCNN, replace=True)
    assert isinstance(build_backbone("flat", 1, 16), Backbone)


def test_a_builder_must_return_a_module(registry):
    register_backbone("nothing", lambda in_channels, image_size: "resnet")
    with pytest.raises(ValueError, match="builder of backbone 'nothing' must return a torch.nn.Module, it returned str"):
        build_backbone("nothing", 1, 8)


def test_module_needs_a_supplied_module():
    with pytest.raises(ValueError, match="nn.Module given to the estimator"):
        build_backbone("module", 1, 8)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'.*resnet18.*small_cnn.*register_backbone"):
        build_backbone("vgg")


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="does not accept option.*'widht'"):
        build_backbone("small_cnn", 1, 28, widht=2)
    with pytest.raises(ValueError, match="stem must be one of"):
        build_backbone("resnet18", 3, 32, stem="tiny")
