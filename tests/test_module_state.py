"""evaluation_mode and the empty-buffer resizing that loading a checkpoint into a fresh module needs."""
import pytest
import torch
from torch import nn

from deepclust.module_state import evaluation_mode, resize_empty_buffers


def test_evaluation_mode_restores_the_mode_even_after_an_error():
    module = nn.Sequential(nn.BatchNorm1d(2))
    module.train()
    with evaluation_mode(module):
        assert not module.training and not module[0].training
    assert module.training and module[0].training
    module.eval()
    with pytest.raises(RuntimeError), evaluation_mode(module):
        raise RuntimeError
    assert not module.training


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("kept", torch.zeros(3))
        self.inner = nn.Module()
        self.inner.register_buffer("bank", torch.zeros(0, 4))


def test_empty_buffers_take_the_saved_shape_and_dtype():
    module = Holder()
    saved = {"labels": torch.arange(5), "kept": torch.ones(3), "inner.bank": torch.ones(7, 4, dtype=torch.float64)}
    resize_empty_buffers(module, saved)
    assert module.labels.shape == (5,) and module.labels.dtype == torch.long
    assert module.inner.bank.shape == (7, 4) and module.inner.bank.dtype == torch.float64
    assert torch.equal(module.kept, torch.zeros(3))          # only empty buffers change, and not their values
    module.load_state_dict(saved)
    assert torch.equal(module.inner.bank, saved["inner.bank"])


def test_prefix_selects_the_entries_of_a_submodule():
    inner = Holder().inner
    resize_empty_buffers(inner, {"inner.bank": torch.ones(2, 4)}, prefix="inner.")
    assert inner.bank.shape == (2, 4)
