"""The learning-rate schedules, against torch's own schedulers."""

from __future__ import annotations

import math

import pytest
import torch

from mcr.training.config import TrainConfig
from mcr.training.loop import lr_factor


def test_cosine_restarts_match_torch_stepped_with_the_global_step_after_the_warmup() -> None:
    """The released code's cosanneal: constant for warm-up steps, then torch's
    CosineAnnealingWarmRestarts(T_0=4, T_mult=2) stepped with the *global* step number."""
    config = TrainConfig(scheduler="cosine_restarts", warmup_steps=10)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, 4, 2)
    for step in range(300):
        ours = lr_factor(config, step, total_steps=300)
        if step < 10:
            assert ours == 1.0
            continue
        torch_schedule.step(step)
        assert ours == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12), step
    # restarts at 4, 12, 28, 60, 124, 252: the factor is back at 1 there
    assert [s for s in range(12, 300) if lr_factor(config, s, 300) == 1.0] == [
        12,
        28,
        60,
        124,
        252,
    ]


def test_plain_cosine_and_none() -> None:
    cosine = TrainConfig(scheduler="cosine", warmup_steps=2)
    assert lr_factor(cosine, 1, 12) == 1.0
    assert lr_factor(cosine, 7, 12) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(TrainConfig(), 5, 12) == 1.0
