"""ClusteringModel's building blocks: the backbone's input check, checkpoint loading into a fresh model and
the epoch passes."""
import numpy as np
import pytest
import torch

from deepclust.backbones.base import Backbone
from deepclust.engine.model import ClusteringModel, EpochPass

CONFIG = {"backbone": {"name": "small_cnn", "width": 0.25}, "augmentation": {"name": "none", "image_size": None}}


def test_make_backbone_checks_one_sample(monkeypatch):
    checked = []
    monkeypatch.setattr(Backbone, "check_input", lambda self, shape: checked.append((self.name, tuple(shape))))
    ClusteringModel(CONFIG, 3, (1, 28, 28)).make_backbone()
    conv1d = {"backbone": {"name": "conv1d", "hidden_channels": [8]}, "augmentation": CONFIG["augmentation"]}
    ClusteringModel(conv1d, 3, (6, 1, 64)).make_backbone()
    assert checked == [("small_cnn", (1, 28, 28)), ("conv1d", (6, 64))]   # 1-D signals: (C, L)


def test_make_backbone_refuses_an_input_it_cannot_take(monkeypatch):
    def refuse(self, shape):
        self._fail(shape, "something else")

    monkeypatch.setattr(Backbone, "check_input", refuse)
    with pytest.raises(ValueError, match=r"backbone 'small_cnn' cannot take input of shape \(1, 28, 28\)"):
        ClusteringModel(CONFIG, 3, (1, 28, 28)).make_backbone()


def test_load_state_dict_sizes_empty_buffers_from_the_checkpoint():
    fitted = ClusteringModel(CONFIG, 3, (1, 28, 28))
    fitted.centroids = torch.randn(3, 5)
    fitted.register_buffer("pseudo_labels", torch.arange(10))
    fresh = ClusteringModel(CONFIG, 3, (1, 28, 28))
    fresh.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long))
    fresh.load_state_dict(fitted.state_dict())
    assert torch.equal(fresh.centroids, fitted.centroids) and torch.equal(fresh.pseudo_labels, fitted.pseudo_labels)


def test_the_default_epoch_is_one_pass_over_everything_with_every_term():
    (only,) = ClusteringModel(CONFIG, 3, (1, 28, 28)).epoch_passes(10, {"unlabeled": np.arange(5)})
    assert (only.name, only.indices, only.terms, only.size(10)) == ("all", None, None, 10)


def test_epoch_pass_holds_int64_indices_and_a_tuple_of_terms():
    epoch_pass = EpochPass("first", [3, 1, 2], ["instance"])
    assert epoch_pass.indices.dtype == np.int64 and epoch_pass.indices.tolist() == [3, 1, 2]
    assert epoch_pass.terms == ("instance",) and epoch_pass.size(10) == 3
    with pytest.raises(ValueError, match=r"epoch pass 'bad': indices must be a 1-D integer array, got float64"):
        EpochPass("bad", [0.5, 1.0])
