"""A small LeNet-style 2-D CNN for images ``(C, H, W)`` or ``(H, W)``: the AV-Digits image encoder.

The defaults are MultiBench's AV-MNIST image backbone ``LeNet(1, 6, 3)`` (``unimodals/
common_models.py``, adapted from CentralNet/MFAS): a 5x5 conv with 6 channels, then three 3x3
convs that double the channels (12, 24, 48), each followed by batch norm, ReLU and a 2x2 max-pool,
so a 28x28 digit ends as a 48x1x1 map. That is about 14k conv weights: cheap on a CPU, and weak
enough that the image is not trivially the dominant modality.

Where we differ from MultiBench, and why:

* The last map is **globally average-pooled**, so any ``H, W`` works (MultiBench squeezes the
  1x1 map, which only works for 28x28). A stage whose map is already one pixel along an axis does
  not pool along that axis, so small inputs (an 8x8 digit, a 20x13 MFCC "image") never shrink to
  zero pixels.
* **Dropout** on the pooled features and a **linear projection** to ``latent_dim`` follow, so
  ``z_m`` has the size the fusion heads expect (64, as the ``mlp`` encoder).
* ``norm`` can be ``"layer"`` (``GroupNorm(1, C)``: per sample, over channels and pixels) or
  ``"none"``, for methods that need a sample's latent not to depend on the rest of its batch in
  training mode. In eval mode batch norm uses running statistics, so no batch mixing happens there.

A 2-D input ``(H, W)`` is treated as one channel, as in ``resnet18``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mcr.config import ConfigError
from mcr.models.encoders.registry import ENCODERS

Norm = Literal["batch", "layer", "none"]
NORMS = typing.get_args(Norm)


@dataclass(frozen=True)
class CNN2dConfig:
    channels: tuple[int, ...] = (6, 12, 24, 48)  # MultiBench AV-MNIST image LeNet(1, 6, 3)
    latent_dim: int = 64  # size of z_m (as mlp); MultiBench feeds the 48 pooled channels on
    dropout: float = 0.1  # on the pooled features (MCR configs: 0.1; MultiBench: none)
    norm: Norm = "batch"  # after every conv (MultiBench: batch norm)

    def __post_init__(self) -> None:
        check_conv_config(self)


def check_conv_config(config) -> None:
    """The checks every conv encoder config shares: widths, latent size, dropout, norm."""
    if not config.channels or any(c < 1 for c in config.channels):
        raise ValueError(f"channels={list(config.channels)}: expected one or more widths >= 1")
    if config.latent_dim < 1:
        raise ValueError(f"latent_dim={config.latent_dim}: expected >= 1")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout={config.dropout}: expected 0 <= dropout < 1")
    if config.norm not in NORMS:
        raise ValueError(f"norm={config.norm!r}: expected one of {', '.join(NORMS)}")


def norm_layer(norm: Norm, channels: int, batch_norm: type[nn.Module]) -> nn.Module:
    """The normalisation after a conv: ``batch_norm(channels)``, ``GroupNorm(1, C)`` or none."""
    if norm == "batch":
        return batch_norm(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


@ENCODERS.register("cnn2d")
class CNN2dEncoder(nn.Module):
    """``[Conv -> Norm -> ReLU -> MaxPool]* -> global mean -> Dropout -> Linear``."""

    Config = CNN2dConfig

    def __init__(self, config: CNN2dConfig, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) not in (2, 3) or any(d < 1 for d in shape):
            raise ConfigError(f"cnn2d expects an image shaped (C, H, W) or (H, W), got {shape}")
        self.input_shape = shape
        self.add_channel_axis = len(shape) == 2
        c_in, h, w = (1, *shape) if self.add_channel_axis else shape
        bias = config.norm != "batch"  # a conv bias is redundant before batch norm (MultiBench)
        stages: list[nn.Module] = []
        for i, c_out in enumerate(config.channels):
            kernel = 5 if i == 0 else 3  # LeNet/MultiBench: 5x5 first, then 3x3; "same" padding
            pool = (2 if h >= 2 else 1, 2 if w >= 2 else 1)  # never pool an axis down to 0
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias),
                    norm_layer(config.norm, c_out, nn.BatchNorm2d),
                    nn.ReLU(),
                    nn.MaxPool2d(pool),
                )
            )
            c_in, h, w = c_out, h // pool[0], w // pool[1]
        self.trunk = nn.Sequential(*stages)
        self.output_map_shape = (c_in, h, w)  # what feature_map returns per sample
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(c_in, config.latent_dim)
        self.latent_dim = config.latent_dim

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *input_shape) -> (B, C', H', W')``: the conv trunk before global pooling."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"cnn2d was built for inputs shaped {self.input_shape}, got a batch shaped "
                f"{tuple(x.shape)}"
            )
        return self.trunk(x.unsqueeze(1) if self.add_channel_axis else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.dropout(self.feature_map(x).mean(dim=(2, 3))))
