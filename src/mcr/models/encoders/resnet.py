"""ResNet-18 (He et al. 2016) for image-like inputs ``(C, H, W)``: the paper's audio/video backbone.

Defined here rather than taken from torchvision, so the project does not depend on torchvision
(whose wheels do not pair with every torch build) and so the layer names are ours to keep stable.
A 2-D input ``(H, W)`` (e.g. a spectrogram) is treated as one channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mcr.models.encoders.registry import ENCODERS


@dataclass(frozen=True)
class ResNet18Config:
    width: int = 64  # channels of the first stage (64 = the standard ResNet-18)
    latent_dim: int = 512  # a linear projection is added when this differs from 8 * width


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@ENCODERS.register("resnet18")
class ResNet18Encoder(nn.Module):
    """Stem (7x7 conv, max-pool), four stages of two basic blocks, global average pool."""

    Config = ResNet18Config

    def __init__(self, config: ResNet18Config, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(f"resnet18 expects inputs (C, H, W) or (H, W), got {input_shape}")
        self.add_channel_axis = len(input_shape) == 2
        channels = 1 if self.add_channel_axis else input_shape[0]
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(channels, w, 7, 2, 3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, c_in = [], w
        for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.project: nn.Module = (
            nn.Identity() if config.latent_dim == c_in else nn.Linear(c_in, config.latent_dim)
        )
        self.latent_dim = config.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel_axis:
            x = x.unsqueeze(1)
        features = self.stages(self.stem(x))
        return self.project(features.mean(dim=(2, 3)))
