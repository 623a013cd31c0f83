"""Devices (choice, synchronisation, matmul speed), seeding and random-state capture for exact
resumption."""
from __future__ import annotations

import random
import time

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else is checked for availability."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device '{device}' (use auto, cpu, cuda, cuda:N or mps)") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available on this machine")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device '{device}' requested but MPS is not available on this machine")
    return resolved


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously); a no-op elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_matmul_size(device: torch.device) -> int:
    """Side of the square matmul that measures a device's speed: 8192 on CUDA, 2048 elsewhere."""
    return 8192 if device.type == "cuda" else 2048


def matmul_gflops(device: torch.device, size: int, min_seconds: float = 0.5,
                  dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of ``size``×``size`` matmuls in ``dtype`` (2·size³ FLOPs each) on ``device``, timed
    for at least ``min_seconds`` and two products after one warm-up product."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    torch.mm(a, b)
    synchronize(device)
    repeats, started = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        repeats += 1
        synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and repeats >= 2:
            break
    return 2.0 * size**3 * repeats / elapsed / 1e9


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
