"""A multilayer perceptron over the flattened input: the encoder for vector features."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mcr.models.encoders.registry import ENCODERS


@dataclass(frozen=True)
class MLPConfig:
    hidden_dims: tuple[int, ...] = (128,)  # widths of the hidden layers (may be empty)
    latent_dim: int = 64  # size of z_m
    dropout: float = 0.1  # after every hidden activation (MCR configs: 0.1)

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or any(h < 1 for h in self.hidden_dims):
            raise ValueError("latent_dim and hidden_dims must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: expected 0 <= dropout < 1")


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    """``Flatten -> [Linear -> ReLU -> Dropout]* -> Linear``; the latent is left linear."""

    Config = MLPConfig

    def __init__(self, config: MLPConfig, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, config.latent_dim))
        self.net = nn.Sequential(*layers)
        self.latent_dim = config.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
