"""A user's module as a backbone (deepclust.backbones.custom): the contract checks and the build context."""
import pytest
import torch
from torch import nn

from deepclust.backbones import MODULE, ModuleBackbone, backbone_build, build_backbone


class Pooled(nn.Module):
    """(B, C, H, W) → (B, width): a conv, BatchNorm, global average pooling."""

    def __init__(self, channels=1, width=4, declared=None):
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if declared is not None:
            self.feature_dim = declared

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x)))).flatten(1)


def test_feature_dim_comes_from_a_trial_forward_pass_in_eval_mode():
    network = Pooled()
    backbone = ModuleBackbone(network, "pooled", 1)
    assert not hasattr(backbone, "feature_dim")
    network.train()
    backbone.check_input((1, 8, 8))
    assert backbone.feature_dim == 4
    assert network.training and network.norm.num_batches_tracked.item() == 0  # eval mode, restored after


def test_a_declared_feature_dim_is_checked_against_the_output():
    assert ModuleBackbone(Pooled(declared=4), "pooled", 1).feature_dim == 4
    with pytest.raises(ValueError, match="7 features \\(its feature_dim\\), the network returned 4"):
        ModuleBackbone(Pooled(declared=7), "pooled", 1).check_input((1, 8, 8))


def test_the_output_must_be_a_batch_of_vectors():
    with pytest.raises(ValueError, match=r"return features \(B, D\).*returned shape \(2, 4, 6, 6\)"):
        ModuleBackbone(nn.Conv2d(1, 4, 3), "maps", 1).check_input((1, 8, 8))
    with pytest.raises(ValueError, match=r"cannot take input of shape \(3, 8, 8\).*RuntimeError"):
        ModuleBackbone(Pooled(channels=1), "pooled", 1).check_input((3, 8, 8))


def test_the_networks_own_check_input_runs_first():
    network = Pooled()
    calls = []
    network.check_input = calls.append
    ModuleBackbone(network, "pooled", 1).check_input((1, 8, 8))
    assert calls == [(1, 8, 8)]


def test_stages_default_to_the_children_holding_parameters():
    assert ModuleBackbone(Pooled(), "pooled", 1).stage_names() == ["network.conv", "network.norm"]
    assert ModuleBackbone(Pooled(), "pooled", 1, stages=["norm"]).stage_names() == ["network.norm"]


def test_the_supplied_module_is_copied_for_each_build():
    given = Pooled()
    with backbone_build(given):
        first, second = build_backbone(MODULE, 1, 8), build_backbone(MODULE, 1, 8)
    assert first.network is not given and second.network is not first.network
    assert torch.equal(first.network.conv.weight, given.conv.weight)
    with pytest.raises(ValueError, match="takes no options"):
        with backbone_build(given):
            build_backbone(MODULE, 1, 8, width=3)
