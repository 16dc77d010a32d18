"""Seeding, determinism and device selection: the few global switches a run flips.

Bottom layer (torch only): training seeds and picks its device here, and the frozen-feature
extraction (``mcr.models.pretrained``) picks its device the same way.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

from mcr.config import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) and request deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    request_deterministic_kernels()


def request_deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its import of
    ``torch._inductor`` (1.9 s, a third of a small training job's start-up) when nothing
    compiles: that import only serves the flag's inductor half. A run that compiles calls this
    again after importing the compiler (``mcr.training.loop``), which sets both halves."""
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:  # the same switch for eager kernels (torch is pinned: requirements.lock)
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but torch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but torch sees no Apple GPU (MPS)")
    return torch.device(name)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The batch-order generator of one epoch: a pure function of (seed, epoch), so a resumed
    run draws the same batches without storing generator state."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
