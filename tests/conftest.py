"""Shared fixtures. Helper functions live in ``support.py`` (``from support import ...``)."""
from __future__ import annotations

import pytest
import torch

from toy_method import blobs  # also registers the "toy" method

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def toy_data():
    return blobs()
