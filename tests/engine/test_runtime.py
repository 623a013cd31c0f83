import itertools
import math

import pytest
import torch

from deepclust.engine import runtime
from deepclust.engine.runtime import matmul_gflops, reference_matmul_size, resolve_device, synchronize


def test_matmul_gflops_counts_two_n_cubed_flops_per_timed_product(monkeypatch):
    ticks = itertools.count()  # every perf_counter call is one second later
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: float(next(ticks)))
    products = []
    real_mm = torch.mm
    monkeypatch.setattr(runtime.torch, "mm", lambda a, b: products.append(a.shape) or real_mm(a, b))
    gflops = matmul_gflops(torch.device("cpu"), 64, min_seconds=0.5)
    # warm-up product, then two timed ones (at least two even once min_seconds has passed): 2 s for 2 products
    assert products == [(64, 64)] * 3
    assert gflops == pytest.approx(2 * 64**3 * 2 / 2.0 / 1e9)


def test_matmul_gflops_on_this_machine_is_a_positive_finite_speed():
    gflops = matmul_gflops(torch.device("cpu"), 128, min_seconds=0.01)
    assert gflops > 0 and math.isfinite(gflops)


def test_reference_size_and_synchronize_per_device():
    assert reference_matmul_size(torch.device("cpu")) == 2048
    assert reference_matmul_size(torch.device("cuda")) == 8192
    synchronize(torch.device("cpu"))  # nothing to wait for, and no CUDA needed


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
