import math

import pytest
import torch

from deepclust.engine.config import ConfigError
from deepclust.engine.optim import build_optimizer, schedule_factor


def test_schedules():
    assert schedule_factor({"name": "constant"}, 5, 10, 100) == 1.0
    warm = {"name": "cosine", "warmup_epochs": 1}
    assert schedule_factor(warm, 0, 10, 100) == pytest.approx(0.1)
    assert schedule_factor(warm, 9, 10, 100) == pytest.approx(1.0)
    assert schedule_factor(warm, 10, 10, 100) == pytest.approx(1.0)
    assert schedule_factor(warm, 55, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert schedule_factor(warm, 100, 10, 100) == pytest.approx(0.0)
    step = {"name": "step", "milestones": [2, 4], "gamma": 0.1}
    assert [schedule_factor(step, s * 10, 10, 100) for s in (1, 2, 4)] == pytest.approx([1, 0.1, 0.01])
    with pytest.raises(ConfigError, match="unknown schedule"):
        schedule_factor({"name": "bogus"}, 0, 1, 1)


def test_parameter_group_lr_scale():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = build_optimizer([{"params": a.parameters()}, {"params": b.parameters(), "lr_scale": 10}],
                                {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4})
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.5])
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer([{"params": a.parameters()}], {"name": "lbfgs", "lr": 1})
