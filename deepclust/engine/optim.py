"""Optimizers and per-step learning-rate schedules built from the ``optimizer``/``schedule`` config."""
from __future__ import annotations

import math

import torch

from deepclust.engine.config import ConfigError


def build_optimizer(parameter_groups: list[dict], config: dict) -> torch.optim.Optimizer:
    """``config`` keys: name (adam, adamw, sgd), lr, weight_decay, momentum, nesterov, betas.

    Frozen parameters (``requires_grad`` False, e.g. ``backbone.freeze``) are left out of every
    group, and a group left empty is dropped."""
    name = config.get("name", "adam").lower()
    base_lr = float(config["lr"])
    groups = []
    for group in parameter_groups:
        group = dict(group)
        group["params"] = [parameter for parameter in group["params"] if parameter.requires_grad]
        group["lr"] = base_lr * float(group.pop("lr_scale", 1.0))
        if group["params"]:
            groups.append(group)
    weight_decay = float(config.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(groups, lr=base_lr, weight_decay=weight_decay,
                                betas=tuple(config.get("betas", (0.9, 0.999))))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=base_lr, weight_decay=weight_decay,
                                 betas=tuple(config.get("betas", (0.9, 0.999))))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=base_lr, weight_decay=weight_decay,
                               momentum=float(config.get("momentum", 0.9)),
                               nesterov=bool(config.get("nesterov", False)))
    raise ConfigError(f"unknown optimizer '{name}'; valid: adam, adamw, sgd")


def schedule_factor(config: dict, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based) for ``config`` keys name, warmup_epochs, ...

    - ``constant``: 1.
    - ``cosine``: half cosine from 1 to ``final_ratio``. ``cosine_period: after_warmup`` (the
      default) spreads it over the steps after warm-up, so it ends at ``final_ratio``;
      ``cosine_period: all_epochs`` is ProPos' / HaDis' formula
      ``0.5 (1 + cos(π (n − W) / T))`` at iteration n = step + 1 (their iterations count from 1),
      W the warm-up and T all steps: it divides by T, not T − W, and so stops short of the end of
      the cosine (at 1000 epochs with 50 of warm-up the last factor is
      0.5 (1 + cos(0.95 π)) ≈ 0.0062).
    - ``step``: multiplied by ``gamma`` at each epoch in ``milestones``.
    A linear warm-up over ``warmup_epochs`` precedes any of them.
    """
    name = config.get("name", "constant")
    warmup_steps = int(round(float(config.get("warmup_epochs", 0)) * steps_per_epoch))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant":
        return 1.0
    if name == "cosine":
        period = config.get("cosine_period", "after_warmup")
        if period == "after_warmup":
            progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        elif period == "all_epochs":
            progress = min((step + 1 - warmup_steps) / max(total_steps, 1), 1.0)
        else:
            raise ConfigError(f"schedule.cosine_period must be after_warmup or all_epochs, got {period!r}")
        final = float(config.get("final_ratio", 0.0))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "step":
        epoch = step // max(steps_per_epoch, 1)
        passed = sum(1 for milestone in config.get("milestones", []) if epoch >= milestone)
        return float(config.get("gamma", 0.1)) ** passed
    raise ConfigError(f"unknown schedule '{name}'; valid: constant, cosine, step")


def build_scheduler(optimizer, config: dict, steps_per_epoch: int, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(config, step, steps_per_epoch, total_steps)
    )
