"""ResNet-18 (He et al. 2016), the paper's audio and video backbone, in torchvision's layout.

Defined here rather than taken from torchvision: the only torchvision wheel matching the pinned
torch on the package index is a CUDA build, which fails to import beside the CPU torch. The
module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.downsample.0``,
...), so a torchvision ``resnet18`` state dict loads as it is (:func:`load_torchvision_weights`;
its ``fc`` head is dropped).

* ``resnet18`` takes an image-like input ``(C, H, W)``; a 2-D input ``(H, W)`` (a spectrogram)
  is one channel. Half-precision inputs (a media cache's ``float16`` spectrograms) are widened.
* ``resnet18_frames`` takes ``(T, 3, H, W)`` uint8 frames: each frame goes through the network
  and the feature maps are average-pooled over time and space (the released code's 3-D pool).
  In training each frame gets its own random resized crop and horizontal flip, as the released
  code's torchvision transforms do, but batched on the device; then ImageNet normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mcr.models.encoders.registry import ENCODERS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResNet18Config:
    width: int = 64  # channels of the first stage (64 = the standard ResNet-18)
    latent_dim: int = 512  # a linear projection is added when this differs from 8 * width


@dataclass(frozen=True)
class FramesResNet18Config:
    width: int = 64  # channels of the first stage (64 = the standard ResNet-18)
    latent_dim: int = 512  # a linear projection is added when this differs from 8 * width
    augment: bool = True  # random resized crop + flip per frame in training (released code)
    crop_size: int = 224  # frames are cropped (training) or resized (evaluation) to this side
    min_scale: float = 0.08  # smallest crop area fraction (torchvision's RandomResizedCrop)

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise ValueError(f"crop_size={self.crop_size}: expected >= 8")
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"min_scale={self.min_scale}: expected in (0, 1]")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet18Trunk(nn.Module):
    """Stem (7x7 conv, max-pool) and four stages of two basic blocks: feature maps."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width), 1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, c_out, stride),
                                                     BasicBlock(c_out, c_out, 1)))  # fmt: skip
            c_in = c_out
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_torchvision_weights(trunk: ResNet18Trunk, state: Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision ``resnet18`` state dict (its ``fc`` is ignored). A 3-channel ``conv1``
    loads into a 1-channel trunk as the sum over its input channels (the usual way to start a
    spectrogram network from ImageNet weights)."""
    weights = {k: v for k, v in state.items() if not k.startswith("fc.")}
    conv1 = weights.get("conv1.weight")
    if conv1 is not None and conv1.shape[1] != trunk.conv1.in_channels == 1:
        weights["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
    missing, unexpected = trunk.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"not a torchvision resnet18 state dict: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )


class _Projected(nn.Module):
    latent_dim: int

    def _head(self, channels: int, latent_dim: int) -> None:
        self.project: nn.Module = (
            nn.Identity() if latent_dim == channels else nn.Linear(channels, latent_dim)
        )
        self.latent_dim = latent_dim


@ENCODERS.register("resnet18")
class ResNet18Encoder(_Projected):
    """ResNet-18 over one image-like input, global average pool, optional projection."""

    Config = ResNet18Config

    def __init__(self, config: ResNet18Config, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(f"resnet18 expects inputs (C, H, W) or (H, W), got {input_shape}")
        self.add_channel_axis = len(input_shape) == 2
        self.trunk = ResNet18Trunk(1 if self.add_channel_axis else input_shape[0], config.width)
        self._head(self.trunk.out_channels, config.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel_axis:
            x = x.unsqueeze(1)
        if not x.is_floating_point() or x.dtype == torch.float16:
            x = x.float()
        return self.project(self.trunk(x).mean(dim=(2, 3)))


@ENCODERS.register("resnet18_frames")
class FramesResNet18Encoder(_Projected):
    """ResNet-18 per frame of ``(T, 3, H, W)`` uint8 clips, pooled over time and space."""

    Config = FramesResNet18Config

    def __init__(self, config: FramesResNet18Config, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(input_shape) != 4 or input_shape[1] != 3:
            raise ValueError(f"resnet18_frames expects inputs (T, 3, H, W), got {input_shape}")
        self.config = config
        self.trunk = ResNet18Trunk(3, config.width)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self._head(self.trunk.out_channels, config.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        frames = x.reshape(b * t, *x.shape[2:])
        frames = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
        size = self.config.crop_size
        if self.training and self.config.augment:
            frames = random_resized_crop(frames, size, self.config.min_scale)
        elif frames.shape[-2:] != (size, size):
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False)  # fmt: skip
        features = self.trunk((frames - self.mean) / self.std)
        pooled = features.reshape(b, t, *features.shape[1:]).mean(dim=(1, 3, 4))
        return self.project(pooled)


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    min_scale: float = 0.08,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """One random crop (area ``min_scale``-1 of the image, aspect ``ratio``) per image, resized
    to ``size``², flipped horizontally with probability 1/2 -- torchvision's RandomResizedCrop and
    RandomHorizontalFlip, as one batched ``grid_sample`` on the images' device. A crop that does
    not fit (torchvision retries 10 times, then centre-crops) is shrunk to fit."""
    n, _, height, width = images.shape
    device = images.device
    area = torch.empty(n, device=device).uniform_(min_scale, 1.0)
    log_ratio = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect * height / width).clamp(max=1.0)  # fractions of width, height
    h = torch.sqrt(area / aspect * width / height).clamp(max=1.0)
    cx = (torch.rand(n, device=device) * (1 - w) + w / 2) * 2 - 1  # centre, in [-1, 1]
    cy = (torch.rand(n, device=device) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, (n, images.shape[1], size, size), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
