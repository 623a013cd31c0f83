"""Numerical faults and storage problems give clear errors before anything is lost."""
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch

from deepclust.engine import NonFiniteLossError
from toy_method import Toy


def test_non_finite_gradient_is_caught_before_the_update(toy_data, monkeypatch):
    images, _ = toy_data
    original = torch.Tensor.backward

    def poisoned_backward(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for parameter in estimator_params:
            if parameter.grad is not None:
                parameter.grad.fill_(float("inf"))
                break

    estimator = Toy(n_clusters=3)
    estimator_params = []
    from deepclust.engine import model as model_module

    original_init = model_module.ClusteringModel.on_fit_start

    def capture(self, context):
        estimator_params.extend(self.parameters())
        return original_init(self, context)

    monkeypatch.setattr(model_module.ClusteringModel, "on_fit_start", capture)
    monkeypatch.setattr(torch.Tensor, "backward", poisoned_backward)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient at epoch 0, step 0: norm inf"):
        estimator.fit(images)
    assert all(torch.isfinite(p).all() for p in estimator_params)


def test_disk_full_is_reported_before_training(tmp_path, toy_data, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OSError, match="not enough free disk space"):
        Toy(n_clusters=3, out_dir=str(tmp_path / "run")).fit(toy_data[0])
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("bad, message", [
    (np.full((20, 8, 8), np.nan, dtype=np.float32), "NaN"),
    (np.zeros((0, 8, 8), dtype=np.uint8), "empty"),
    (np.zeros((20,), dtype=np.uint8), "shape"),
])
def test_bad_arrays_name_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        Toy(n_clusters=3).fit(bad)


def test_labels_length_mismatch(toy_data):
    images, labels = toy_data
    with pytest.raises(ValueError, match="length|mismatch|labels"):
        Toy(n_clusters=3).fit(images, labels[:-1])
