"""The backbone registry of the package (deepclust/backbones/__init__.py): names and options."""
import pytest

from deepclust.backbones import build_backbone, list_backbones


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
