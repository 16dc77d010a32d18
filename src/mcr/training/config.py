"""The settings every method shares (``train.common``); defaults from the MCR code base."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mcr.config import param

CODE = "MCR code base"
#: The devices ``device`` may name.
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """The ``train.common`` params block (defaults: MCR code base, docs/mcr.md)."""

    epochs: int = param(100, "maximum number of epochs", source=CODE, ge=1)
    batch_size: int = param(32, "rows per batch", source="MCR: 32 for ResNet settings", ge=2)
    lr: float = param(1e-4, "Adam learning rate", source=CODE, gt=0)
    weight_decay: float = param(
        1e-4, "L2 penalty inside Adam (the code uses Adam, not AdamW)", source=CODE, ge=0
    )
    adam_eps: float = param(1e-7, "Adam epsilon", source=CODE, gt=0)
    scheduler: Literal["none", "cosine", "cosine_restarts"] = param(
        "none",
        "none | cosine: per-step decay to 0 after the warm-up | cosine_restarts: the released "
        "code's cosanneal, cosine restarts over the global step number after the warm-up",
        source=CODE,
    )
    warmup_steps: int = param(0, "constant-LR steps before the cosine decay", source=CODE, ge=0)
    restart_period: int = param(
        4, "cosine_restarts: steps of the first cycle (T_0)", source="released code", ge=1
    )
    restart_mult: int = param(
        2, "cosine_restarts: each cycle is this many times longer (T_mult)",
        source="released code", ge=1,
    )  # fmt: skip
    patience: int = param(
        25, "early stop after this many epochs without validation improvement", ge=0
    )
    select_on: Literal["auto", "accuracy", "loss"] = param(
        "auto", "model selection on validation: auto = accuracy, or loss for regression"
    )
    grad_clip_norm: float = param(
        0.0, "gradient-norm clipping, 0 = off", source="MCR clips only Sth-Sth, at 5.0", ge=0
    )
    device: str = param("auto", "auto | cpu | cuda | cuda:N | mps")
    bf16: bool = param(True, "bf16 autocast on CUDA (ignored on CPU)")
    channels_last: bool = param(
        True, "CUDA: convolution weights in channels-last memory format (ignored on CPU)"
    )
    compile: bool = param(
        False, "torch.compile the training forward pass (slow first steps; for long GPU runs)"
    )
    loader: Literal["auto", "memory", "stream"] = param(
        "auto",
        "memory: every split in RAM (exact, fastest) | stream: read the Parquet files row group "
        "by row group with bounded memory (shuffled within windows of row groups) | auto: "
        "stream when the dataset's modality data exceed memory_budget_gb",
    )
    memory_budget_gb: float = param(
        4.0, "loader auto: largest dataset (uncompressed modality bytes) held in RAM", gt=0
    )
    stream_window: int = param(
        8, "loader stream: row groups shuffled together (more = a more global shuffle)", ge=1
    )
    stream_prefetch: int = param(2, "loader stream: windows read ahead in a thread", ge=0)
    eval_batch_size: int = param(1024, "rows per forward pass at validation", ge=2)
    progress: bool = param(True, "a progress bar per run (stderr)")
    checkpoint_every_s: float = param(
        30.0,
        "write last.pt / best.pt at most this often (and when the run ends): an interrupted "
        "run resumes from the last write, identically; 0 = after every epoch. Writing both "
        "every epoch took a third of a small synthetic run's time",
        ge=0,
    )

    def __post_init__(self) -> None:
        if not DEVICE.match(self.device):
            raise ValueError(
                f"device={self.device!r}: expected one of auto, cpu, cuda, cuda:N (N = 0, 1, ...), "
                "mps"
            )

    @property
    def memory_budget(self) -> float:
        """GiB of dataset :func:`mcr.data.contract.read_dataset` may load: what ``loader`` means."""
        return {"memory": float("inf"), "stream": 0.0}.get(self.loader, self.memory_budget_gb)
