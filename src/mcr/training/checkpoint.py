"""Checkpoints: atomic writes, ``weights_only`` reads, and rebuilding a model from its file.

A checkpoint carries the model's :class:`~mcr.models.multimodal.ModelSpec` (nanoGPT habit: a
checkpoint describes itself), so evaluation needs nothing but the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mcr.io import atomic_path
from mcr.models.multimodal import ModelSpec, MultimodalModel

LAST = "last.pt"  # full training state, rewritten after every epoch (for resume)
BEST = "best.pt"  # model + method state at the best validation epoch (for evaluation)


def save(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file and rename, so a crash never leaves a truncated checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> MultimodalModel:
    """Rebuild the model stored in a ``best.pt``/``last.pt`` (or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    state = load(path)
    model = MultimodalModel(ModelSpec.from_dict(state["model_spec"]))
    model.load_state_dict(state["model_state"])
    return model.to(device).eval()
