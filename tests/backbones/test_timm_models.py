"""timm's models as backbones (deepclust.backbones.timm_models), with a stand-in ``timm`` module and,
where timm itself imports, the real one."""
import sys
import types

import pytest
import torch
from torch import nn

from deepclust.backbones import build_backbone, load_weights
from deepclust.backbones.weights import freeze_backbone
from deepclust.cluster.umap_gmm import MissingExtraError


class FakeTimmNet(nn.Module):
    """What timm.create_model(..., num_classes=0) gives: pooled features, num_features, feature_info."""

    def __init__(self, in_chans):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 4, 3)
        self.act1 = nn.ReLU()
        self.layer1 = nn.Conv2d(4, 6, 3)
        self.layer2 = nn.Conv2d(6, 8, 3)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Identity()
        self.num_features = 8
        self.feature_info = [{"num_chs": 4, "reduction": 1, "module": "act1"},
                             {"num_chs": 6, "reduction": 1, "module": "layer1"},
                             {"num_chs": 8, "reduction": 1, "module": "layer2"}]

    def forward(self, x):
        return self.fc(self.global_pool(self.layer2(self.layer1(self.act1(self.conv1(x))))))


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []

    def create_model(name, **kwargs):
        calls.append((name, kwargs))
        return FakeTimmNet(kwargs["in_chans"])

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_create_model_is_called_offline_without_pretrained_weights_or_classifier(fake_timm):
    import os

    backbone = build_backbone("timm", 1, 16, model="resnet18", options={"drop_path_rate": 0.1})
    assert fake_timm == [("resnet18", {"pretrained": False, "num_classes": 0, "in_chans": 1, "drop_path_rate": 0.1})]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert backbone.feature_dim == 8 and backbone.name == "timm resnet18"
    backbone.check_input((1, 16, 16))
    assert backbone(torch.zeros(2, 1, 16, 16)).shape == (2, 8)
    assert backbone.stage_names() == ["network.act1", "network.layer1", "network.layer2"]


def test_weights_and_freeze_apply_to_the_timm_model(fake_timm, tmp_path):
    torch.manual_seed(1)
    source = FakeTimmNet(1)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    backbone = build_backbone("timm", 1, 16, model="resnet18")
    load_weights(backbone, tmp_path / "w.pth")
    assert torch.equal(backbone.network.layer2.weight, source.layer2.weight)
    freeze_backbone(backbone, 2)  # layer1 and layer2 train; the stem before them is frozen
    assert [name for name, p in backbone.named_parameters() if p.requires_grad] == [
        "network.layer1.weight", "network.layer1.bias", "network.layer2.weight", "network.layer2.bias"]


def test_bad_options_are_refused(fake_timm):
    with pytest.raises(ValueError, match="model must be the name of a timm model"):
        build_backbone("timm", 3, 32)
    with pytest.raises(ValueError, match=r"may not set \['pretrained'\]"):
        build_backbone("timm", 3, 32, model="resnet18", options={"pretrained": True})
    assert fake_timm == []


def test_without_timm_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'deepclust\[timm\]'"):
        build_backbone("timm", 3, 32, model="resnet18")


def real_timm():
    try:
        import timm
    except Exception as error:  # not installed, or its torchvision import fails
        pytest.skip(f"timm cannot be imported here: {type(error).__name__}: {error}")
    return timm


def test_a_real_timm_resnet_takes_local_weights(tmp_path):
    timm = real_timm()
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=1)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    backbone = build_backbone("timm", 1, 32, model="resnet18")
    backbone.check_input((1, 32, 32))
    load_weights(backbone, tmp_path / "resnet18.pth")
    assert backbone.feature_dim == reference.num_features
    reference.eval(), backbone.eval()
    images = torch.rand(2, 1, 32, 32)
    assert torch.equal(backbone(images), reference(images))
    freeze_backbone(backbone, 1)
    assert {name.split(".")[1] for name, p in backbone.named_parameters() if p.requires_grad} == {"layer4"}
