"""What a run keeps between epochs and processes: ``last.pt``, ``best.pt``, ``history.csv``.

A resumed run must give the same numbers as an uninterrupted one, so ``last.pt`` holds the
model, the method's state, the optimiser, the RNG and the loop's :class:`Progress`, together with
the settings (``meta``) it was written with; a run asked with other settings is refused.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mcr.io import atomic_write
from mcr.methods.base import Method
from mcr.models.multimodal import MultimodalModel
from mcr.training import checkpoint


@dataclass
class Progress:
    """What survives an epoch boundary; stored in ``last.pt``."""

    next_epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    best_val: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # training + validation time over every process that ran the run
    started_at: float = 0.0  # wall clock (Unix time) when the first epoch began
    finished_at: float = 0.0  # ... and when the run finished (0 until then)
    # The content of best.pt, so a resumed run can restore it: a workflow that reruns a job
    # (e.g. Snakemake, when a seed is added) deletes the job's outputs first.
    best_checkpoint: dict[str, Any] = field(default_factory=dict)


def write_history(history: Sequence[Mapping[str, float]], path: Path) -> None:
    """One row per epoch, every key any epoch logged (the loss terms differ between methods)."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def restore_outputs(out_dir: Path, progress: Progress) -> None:
    """Write ``history.csv`` and, if it is missing, ``best.pt`` from the run's progress: a
    resumed finished run trains nothing, but must still leave its outputs in place."""
    write_history(progress.history, out_dir / "history.csv")
    if progress.best_checkpoint and not (out_dir / checkpoint.BEST).is_file():
        checkpoint.save(progress.best_checkpoint, out_dir / checkpoint.BEST)


def save_checkpoints(
    out_dir: Path,
    meta: Mapping[str, Any],
    model: MultimodalModel,
    method: Method,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    best_written: int | None,
) -> int:
    """``best.pt`` (when the best epoch changed since ``best_written``), then ``last.pt`` and
    ``history.csv``: in this order, a ``last.pt`` on disk never names a best epoch that
    ``best.pt`` does not hold. Returns the best epoch now on disk."""
    if progress.best_checkpoint and progress.best_epoch != best_written:
        checkpoint.save(progress.best_checkpoint, out_dir / checkpoint.BEST)
    save_last(out_dir / checkpoint.LAST, meta, model, method, optimizer, progress)
    write_history(progress.history, out_dir / "history.csv")
    return progress.best_epoch


def save_last(
    path: Path,
    meta: Mapping[str, Any],
    model: MultimodalModel,
    method: Method,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
) -> None:
    """Everything a resume needs (the loop writes it every ``checkpoint_every_s`` seconds)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    checkpoint.save(
        {
            **meta,
            "model_spec": model.spec.to_dict(),
            "model_state": model.state_dict(),
            "method_state": method.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "rng": rng,
            "progress": vars(progress),
        },
        path,
    )


class SettingsChangedError(ValueError):
    """``last.pt`` belongs to a run with other settings than the one asked for."""


def restore(
    path: Path,
    meta: Mapping[str, Any],
    model: MultimodalModel,
    method: Method,
    optimizer: torch.optim.Optimizer,
) -> Progress:
    """Load ``last.pt`` into the model, method and optimiser; the loop continues from the
    returned progress.

    Raises:
        SettingsChangedError: ``last.pt`` was written with other settings than ``meta``.
    """
    state = checkpoint.load(path)
    stored = {k: state.get(k) for k in meta}
    if stored != dict(meta):
        changed = sorted(k for k in meta if stored.get(k) != meta[k])
        raise SettingsChangedError(
            f"{path} was written with different settings ({', '.join(changed)}); "
            "delete the run folder or train without resume"
        )
    model.load_state_dict(state["model_state"])
    method.load_state_dict(state["method_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return Progress(**state["progress"])


def unfinished_reason(run_dir: Path) -> str:
    """``"epoch 3 of 20 done"`` when the run's ``last.pt`` says it stopped before the end, else
    empty (finished, or no ``last.pt`` to tell)."""
    last = Path(run_dir) / checkpoint.LAST
    if not last.is_file():
        return ""
    state = checkpoint.load(last)
    progress = state.get("progress") or {}
    if progress.get("finished", True):
        return ""
    epochs = (state.get("train_config") or {}).get("epochs", "?")
    return f"epoch {progress.get('next_epoch', 0)} of {epochs} done"
