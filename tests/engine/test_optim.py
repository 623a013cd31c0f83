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


def test_frozen_parameters_stay_out_of_the_optimizer():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    a.weight.requires_grad_(False)
    b.requires_grad_(False)
    optimizer = build_optimizer([{"params": a.parameters()}, {"params": b.parameters(), "lr_scale": 10}],
                                {"name": "adam", "lr": 0.1})
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["params"] == [a.bias]


def test_cosine_over_all_epochs_is_the_propos_formula():
    """``cosine_period: all_epochs``: ProPos' / HaDis' lr at iteration n = step + 1 (counted from 1):
    warm-up n/W, then 0.5 (1 + cos(π (n − W) / T)); by hand for W = 10 warm-up steps of T = 100."""
    config = {"name": "cosine", "warmup_epochs": 1, "cosine_period": "all_epochs"}
    assert schedule_factor(config, 0, 10, 100) == pytest.approx(0.1)            # n = 1: 1/10
    assert schedule_factor(config, 9, 10, 100) == pytest.approx(1.0)            # n = 10: cos(0)
    assert schedule_factor(config, 10, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 1 / 100)))
    assert schedule_factor(config, 59, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 100)))
    assert schedule_factor(config, 99, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 90 / 100)))
    # the paper configuration: 1000 epochs, 50 of warm-up; the last update runs at 0.62 % of the peak
    paper = {"name": "cosine", "warmup_epochs": 50, "cosine_period": "all_epochs"}
    last = schedule_factor(paper, 1000 * 195 - 1, 195, 1000 * 195)
    assert last == pytest.approx(0.5 * (1 + math.cos(0.95 * math.pi))) and last == pytest.approx(0.00616, abs=1e-5)
    # the default period ends at 0 exactly
    assert schedule_factor({"name": "cosine", "warmup_epochs": 50}, 1000 * 195, 195, 1000 * 195) == 0.0
    with pytest.raises(ConfigError, match="schedule.cosine_period"):
        schedule_factor({"name": "cosine", "cosine_period": "sometimes"}, 0, 1, 1)
