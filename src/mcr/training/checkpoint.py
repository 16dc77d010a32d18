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


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an error's message (torch's run over many lines), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, file-size limit, read-only folder)."""


def save(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file and rename, so a crash never leaves a truncated checkpoint.

    Raises:
        CheckpointWriteError: the write failed; the previous file at ``path`` is untouched.
    """
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as exc:  # torch's writer reports a full disk as RuntimeError
        reason = first_line(exc)
        previous = "the previous one is intact" if path.is_file() else "nothing was written"
        raise CheckpointWriteError(
            f"{path}: could not write the checkpoint ({reason}); is the disk full or the folder "
            f"read-only? {previous}"
        ) from None


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be read (truncated, overwritten, not mcr's)."""


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU, tensors and plain types only (``weights_only``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file cannot be read, with what to do about it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- zip, pickle, EOF and torch errors alike
        raise CheckpointError(f"{path}: {unreadable_advice(path)} ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: {unreadable_advice(path)} (not a checkpoint mapping)")
    return state


def unreadable_advice(path: Path) -> str:
    """What to do about an unreadable checkpoint, by its kind."""
    if path.name == LAST:
        return (
            "cannot read this training state (truncated or not written by mcr); delete it, or "
            "train with --no-resume, to start the run afresh"
        )
    return (
        "cannot read this checkpoint (truncated or not written by mcr); retrain the run "
        "(mcr train, or rerun its pipeline job)"
    )


def load_model(path: str | Path, device: torch.device | str = "cpu") -> MultimodalModel:
    """Rebuild the model stored in a ``best.pt``/``last.pt`` (or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    return model_from_state(load(path), device)


def model_from_state(state: dict[str, Any], device: torch.device | str = "cpu") -> MultimodalModel:
    """The model a loaded checkpoint describes, in eval mode (no second read of the file)."""
    model = MultimodalModel(ModelSpec.from_dict(state["model_spec"]))
    model.load_state_dict(state["model_state"])
    return model.to(device).eval()
