import math

import pytest
import torch
from torch import nn

from deepclust.engine import (
    ConfigError, check_momentum_schedule, cosine_momentum, ema_update, make_target, scheduled_momentum,
)


def test_target_is_exact_copy_without_gradients():
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = make_target(online)
    for a, b in zip(online.parameters(), target.parameters()):
        assert torch.equal(a, b) and not b.requires_grad


def test_ema_update_rule_exact():
    torch.manual_seed(0)
    online = nn.Linear(3, 2)
    target = make_target(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    old = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for before, new_online, after in zip(old, online.parameters(), target.parameters()):
        assert torch.allclose(after, 0.9 * before + 0.1 * new_online, atol=1e-7)


def test_buffers_copied_only_when_asked():
    online, target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    online.running_mean.fill_(3.0)
    ema_update(target, online, 0.5)
    assert torch.equal(target.running_mean, torch.zeros(2))
    ema_update(target, online, 0.5, include_buffers=True)
    assert torch.equal(target.running_mean, torch.full((2,), 3.0))


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.99, 0, 100) == 0.99
    assert abs(cosine_momentum(0.99, 100, 100) - 1.0) < 1e-12
    assert abs(cosine_momentum(0.99, 50, 100) - (1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)) < 1e-12


def test_scheduled_momentum():
    assert scheduled_momentum(0.9, "constant", 50, 100) == 0.9
    assert scheduled_momentum(0.9, "cosine", 50, 100) == cosine_momentum(0.9, 50, 100)
    assert abs(scheduled_momentum(0.9, "cosine", 50, 100) - 0.95) < 1e-12
    with pytest.raises(ConfigError, match="momentum schedule must be one of constant, cosine, got 'linear'"):
        scheduled_momentum(0.9, "linear", 0, 100)
    assert check_momentum_schedule("cosine") == "cosine"
    with pytest.raises(ConfigError, match=r"method.momentum_schedule must be one of constant, cosine, got True"):
        check_momentum_schedule(True)


def test_cosine_momentum_is_the_propos_momentum_increase():
    """ProPos / HaDis (momentum_increase, momentum_max 1): m = m_max − (m_max − m_base)(cos(π n / (E·I)) + 1) / 2
    at iteration n of E·I, by hand for m_base 0.996, E·I = 1000."""
    for n in (1, 250, 500, 999, 1000):
        by_hand = 1.0 - (1.0 - 0.996) * (math.cos(math.pi * n / 1000) + 1) / 2
        assert abs(cosine_momentum(0.996, n, 1000) - by_hand) < 1e-15
