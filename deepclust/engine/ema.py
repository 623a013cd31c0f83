"""Exponential moving average (momentum / target) networks and their momentum schedule, shared by HTCN and HaDis."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from deepclust.engine.config import ConfigError

#: Values of a method's ``momentum_schedule`` option.
MOMENTUM_SCHEDULES = ("constant", "cosine")


def make_target(online: nn.Module) -> nn.Module:
    """An exact copy of ``online`` that receives no gradient."""
    target = copy.deepcopy(online)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float, *, include_buffers: bool = False) -> None:
    """θ_target ← m·θ_target + (1 − m)·θ_online for every parameter (BYOL, Grill et al. 2020, Eq. 1).

    Buffers (BatchNorm running statistics) are copied only with ``include_buffers``; the HTCN and
    HaDis reference implementations leave them to the target network's own forward passes.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
    target_params = list(target.parameters())
    online_params = list(online.parameters())
    if len(target_params) != len(online_params):
        raise ValueError("target and online networks have different parameter lists")
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
    if include_buffers:
        for target_buffer, online_buffer in zip(target.buffers(), online.buffers()):
            target_buffer.copy_(online_buffer)


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """Momentum increased from ``base`` to 1 along a half cosine (BYOL's schedule):
    1 − (1 − base)(cos(π·step/total_steps) + 1)/2 — ProPos' / HaDis' ``momentum_increase`` with
    ``momentum_max`` 1, when ``step`` is their 1-based iteration (the methods pass global step + 1)."""
    if total_steps <= 0:
        return base
    progress = min(max(step / total_steps, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def check_momentum_schedule(schedule: str, key: str = "method.momentum_schedule") -> str:
    """``schedule`` if it is one of :data:`MOMENTUM_SCHEDULES`, else a :class:`ConfigError` naming ``key``."""
    if schedule not in MOMENTUM_SCHEDULES:
        raise ConfigError(f"{key} must be one of {', '.join(MOMENTUM_SCHEDULES)}, got {schedule!r}")
    return schedule


def scheduled_momentum(base: float, schedule: str, step: int, total_steps: int) -> float:
    """The EMA momentum after ``step`` of ``total_steps`` optimizer steps: ``base`` throughout
    (``"constant"``) or :func:`cosine_momentum` (``"cosine"``)."""
    if check_momentum_schedule(schedule, "momentum schedule") == "cosine":
        return cosine_momentum(base, step, total_steps)
    return base
