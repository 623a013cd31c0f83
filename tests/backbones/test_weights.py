"""Pretrained weights and frozen parts of any backbone (deepclust.backbones.weights)."""
import sys

import pytest
import torch
from torch import nn

from deepclust.backbones import ModuleBackbone, build_backbone, load_weights, prepare_backbone, read_state_dict
from deepclust.backbones.weights import freeze_backbone, split_backbone_section
from deepclust.cluster.umap_gmm import MissingExtraError


def small_cnn(seed):
    torch.manual_seed(seed)
    return build_backbone("small_cnn", 1, 16, width=0.25)


def assert_same_state(a: nn.Module, b: nn.Module):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_split_backbone_section():
    assert split_backbone_section({"name": "small_cnn", "width": 0.5, "weights": "w.pt", "freeze": 2}) == \
        ("small_cnn", {"width": 0.5}, {"weights": "w.pt", "freeze": 2})


@pytest.mark.parametrize("nesting", [None, "state_dict", "model"])
def test_a_torch_state_dict_is_loaded_exactly(tmp_path, nesting):
    source = small_cnn(seed=1)
    source.features[1].running_mean.fill_(0.25)  # buffers travel too
    state = source.state_dict()
    torch.save(state if nesting is None else {nesting: state, "epoch": 3}, tmp_path / "w.pt")
    target = small_cnn(seed=2)
    report = load_weights(target, tmp_path / "w.pt")
    assert report["missing"] == [] and report["unexpected"] == [] and len(report["loaded"]) == len(state)
    assert_same_state(source, target)


def test_a_safetensors_file_is_loaded_exactly(tmp_path):
    from safetensors.torch import save_file

    source = small_cnn(seed=1)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    target = small_cnn(seed=2)
    load_weights(target, tmp_path / "w.safetensors")
    assert_same_state(source, target)


def test_without_safetensors_the_error_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "w.safetensors").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(MissingExtraError, match=r"deepclust\[safetensors\]"):
        read_state_dict(tmp_path / "w.safetensors")


def test_missing_and_unexpected_keys_are_counted_and_named(tmp_path):
    source = small_cnn(seed=1)
    state = source.state_dict()
    kept = {key: value for key, value in state.items() if not key.startswith("features.9.")}
    torch.save({**kept, "fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}, tmp_path / "w.pt")
    target = small_cnn(seed=2)
    with pytest.raises(ValueError, match=r"1 missing keys \(features\.9\.weight\) and 2 unexpected keys "
                                         r"\(fc\.weight, fc\.bias\); set backbone\.strict: false"):
        load_weights(target, tmp_path / "w.pt")
    untouched = target.features[9].weight.clone()
    with pytest.warns(UserWarning, match=r"loaded \d+ keys; 1 missing keys .* 2 unexpected keys"):
        report = load_weights(target, tmp_path / "w.pt", strict=False)
    assert report["missing"] == ["features.9.weight"] and report["unexpected"] == ["fc.weight", "fc.bias"]
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert torch.equal(target.features[9].weight, untouched)


def test_files_that_do_not_fit_are_refused(tmp_path):
    target = small_cnn(seed=0)
    with pytest.raises(ValueError, match="no file"):
        load_weights(target, tmp_path / "absent.pt")
    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"1 tensor\(s\) of another shape \(features\.0\.weight \(file \(3, 3\), "
                                         r"backbone \(8, 1, 3, 3\)\)\)"):
        load_weights(target, tmp_path / "shape.pt", strict=False)
    torch.save({"head.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="none of the file's 1 keys is a key of the backbone"):
        load_weights(target, tmp_path / "other.pt", strict=False)
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="holds no state dict: its entries \\(epoch, note\\)"):
        load_weights(target, tmp_path / "meta.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch state dict"):
        load_weights(target, tmp_path / "junk.pt")


def test_weights_go_into_the_network_of_a_module_backbone(tmp_path):
    network = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    torch.save(network.state_dict(), tmp_path / "w.pt")
    target = ModuleBackbone(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "flat", 1)
    load_weights(target, tmp_path / "w.pt")
    assert torch.equal(target.network[1].weight, network[1].weight)


def trainable(backbone):
    return [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]


def test_freeze_true_freezes_everything_and_keeps_batchnorm_statistics():
    backbone = small_cnn(seed=0)
    prepare_backbone(backbone, freeze=True)
    assert trainable(backbone) == []
    backbone.train()
    norms = [module for module in backbone.modules() if isinstance(module, nn.BatchNorm2d)]
    assert norms and not any(norm.training for norm in norms) and backbone.training
    before = [norm.running_mean.clone() for norm in norms]
    backbone(torch.rand(4, 1, 16, 16))
    assert all(torch.equal(norm.running_mean, mean) for norm, mean in zip(norms, before))


def test_freeze_n_trains_the_last_n_stages():
    resnet = build_backbone("resnet18", 3, 32)
    freeze_backbone(resnet, 2)
    assert {name.split(".")[0] for name in trainable(resnet)} == {"layer3", "layer4"}
    resnet.train()
    assert not resnet.stem[1].training and not resnet.layer2[1].bn2.training and resnet.layer3[0].bn1.training
    cnn = small_cnn(seed=0)
    freeze_backbone(cnn, 1)
    assert trainable(cnn) == ["features.9.weight", "features.10.weight", "features.10.bias"]


def test_a_stage_without_parameters_starts_at_the_next_parameters():
    network = nn.Sequential()
    network.add_module("conv", nn.Conv2d(1, 2, 3))
    network.add_module("act", nn.ReLU())  # a stage boundary holding no parameters, as timm's "act1"
    network.add_module("block", nn.Conv2d(2, 2, 3))
    network.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    backbone = ModuleBackbone(network, "staged", 1, feature_dim=2, stages=["act", "block"])
    freeze_backbone(backbone, 2)
    assert trainable(backbone) == ["network.block.weight", "network.block.bias"]


@pytest.mark.parametrize("freeze, message", [(0, "1..4"), (5, "1..4 for backbone 'small_cnn'"), ("all", "got 'all'")])
def test_bad_freeze_values_name_the_stages(freeze, message):
    with pytest.raises(ValueError, match=message):
        prepare_backbone(small_cnn(seed=0), freeze=freeze)


def test_bad_settings():
    with pytest.raises(ValueError, match="strict must be true or false"):
        prepare_backbone(small_cnn(seed=0), strict="yes")
    with pytest.raises(ValueError, match="weights must be the path"):
        prepare_backbone(small_cnn(seed=0), weights=3)
