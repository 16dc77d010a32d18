"""Joint training (docs/baselines.md §3): one fused task loss, no balancing at all."""

from __future__ import annotations

from dataclasses import dataclass

from mcr.methods.base import Method
from mcr.methods.registry import METHODS


@dataclass(frozen=True)
class JointConfig:
    """Joint training has no hyper-parameters of its own."""


@METHODS.register("joint")
class JointMethod(Method):
    """``L = task(sum_m W_m z_m + b, y)`` -- the base strategy, registered under its name."""

    Config = JointConfig
    min_modalities = 2
