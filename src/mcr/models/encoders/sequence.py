"""Encoders for feature sequences ``(T, F)``, e.g. FSDD MFCCs resampled to 20 frames x 13 coefs.

Two registered encoders:

``tcn``
    A temporal conv net (Bai, Kolter & Koltun 2018): residual blocks of one dilated 1-D conv over
    time (dilation ``2**i`` in block ``i``, centred "same" zero padding, so the clip is seen in
    both directions), a norm and ReLU; then the mean over time, dropout and a linear projection.
    With the defaults (3 blocks, kernel 3) a frame sees 15 neighbours, most of a 20-frame clip.
    One conv per block (Bai et al. use two) keeps it cheap: about 33k parameters for 13 MFCCs.
``gru``
    A (by default bidirectional) GRU; the last layer's final hidden state of each direction,
    concatenated, goes through dropout and a linear projection.

Both run on any number of frames ``T >= 1``: ``input_shape`` fixes the feature count ``F``, and
a batch with another ``T`` is accepted (with ``T = 1`` the TCN's dilated taps fall on padding, so
it reduces to a per-frame MLP, and the GRU to one step). The TCN's default ``norm="layer"``
(``GroupNorm(1, C)``, over a sample's channels and frames) and the GRU have no batch statistics,
so a sample's latent never depends on the rest of its batch, in training or eval mode, and a
batch of one clip of one frame trains. Inputs are expected standardised per coefficient (MFCC c0
is on a much larger scale than the rest); padded clips are averaged with their padding, so
resample to a fixed ``T`` rather than zero-pad.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mcr.config import ConfigError
from mcr.models.encoders.cnn import Norm, check_conv_config, norm_layer
from mcr.models.encoders.registry import ENCODERS


def check_sequence_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(T, F)`` with both >= 1, or one ConfigError naming the encoder and the shape."""
    shape = tuple(input_shape)
    if len(shape) != 2 or any(d < 1 for d in shape):
        raise ConfigError(f"{name} expects a sequence shaped (T, F), e.g. (20, 13), got {shape}")
    return shape  # type: ignore[return-value]


def check_batch(name: str, x: torch.Tensor, num_features: int) -> None:
    """A clear error instead of a conv/RNN shape error deep inside torch."""
    if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != num_features:
        raise ValueError(
            f"{name} expects a batch shaped (B, T, {num_features}) with T >= 1, got "
            f"{tuple(x.shape)}"
        )


@dataclass(frozen=True)
class TCNConfig:
    channels: tuple[int, ...] = (64, 64, 64)  # ours: block i dilates 2**i -> 15-frame view
    kernel_size: int = 3  # Bai et al. 2018's smallest; odd, so "same" padding is centred
    latent_dim: int = 64  # size of z_m (as mlp)
    dropout: float = 0.1  # on the time-pooled features (MCR configs: 0.1)
    norm: Norm = "layer"  # GroupNorm(1, C): per sample, so no batch mixing even in training

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size}: expected an odd integer >= 1")
        check_conv_config(self)


class TemporalBlock(nn.Module):
    """``relu(norm(dilated_conv(x)) + skip(x))``; ``skip`` is a 1x1 conv when widths differ."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, norm: Norm) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2  # centred: output length = input length
        bias = norm != "batch"  # a conv bias is redundant before batch norm
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=bias)
        self.norm = norm_layer(norm, c_out, nn.BatchNorm1d)
        self.skip: nn.Module = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)) + self.skip(x))


@ENCODERS.register("tcn")
class TCNEncoder(nn.Module):
    """``(B, T, F) -> [TemporalBlock]* -> mean over T -> Dropout -> Linear``."""

    Config = TCNConfig

    def __init__(self, config: TCNConfig, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        _, self.num_features = check_sequence_shape("tcn", input_shape)
        blocks, c_in = [], self.num_features
        for i, c_out in enumerate(config.channels):
            blocks.append(TemporalBlock(c_in, c_out, config.kernel_size, 2**i, config.norm))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(c_in, config.latent_dim)
        self.latent_dim = config.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch("tcn", x, self.num_features)
        features = self.blocks(x.transpose(1, 2))  # conv over time: (B, F, T)
        return self.project(self.dropout(features.mean(dim=2)))


@dataclass(frozen=True)
class GRUConfig:
    hidden_size: int = 64  # per direction (ours: the TCN's width)
    num_layers: int = 1  # ours: one layer suffices for 20-frame clips
    bidirectional: bool = True  # the whole clip is available; both ends get equal weight
    latent_dim: int = 64  # size of z_m (as mlp)
    dropout: float = 0.1  # on the final state, and between GRU layers when num_layers > 1

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_layers < 1 or self.latent_dim < 1:
            raise ValueError(
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"latent_dim={self.latent_dim}: expected all >= 1"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: expected 0 <= dropout < 1")


@ENCODERS.register("gru")
class GRUEncoder(nn.Module):
    """``(B, T, F) -> GRU -> last layer's final states (both directions) -> Dropout -> Linear``."""

    Config = GRUConfig

    def __init__(self, config: GRUConfig, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        _, self.num_features = check_sequence_shape("gru", input_shape)
        self.gru = nn.GRU(
            self.num_features,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # torch warns otherwise
            bidirectional=config.bidirectional,
        )
        self.num_directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(self.num_directions * config.hidden_size, config.latent_dim)
        self.latent_dim = config.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch("gru", x, self.num_features)
        _, h_n = self.gru(x)  # (num_layers * directions, B, hidden), last layer last
        final = h_n[-self.num_directions :].transpose(0, 1).flatten(1)  # (B, directions * hidden)
        return self.project(self.dropout(final))
