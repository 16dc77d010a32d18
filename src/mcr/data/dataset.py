"""In-memory multimodal datasets: one contiguous tensor per modality and split.

Everything downstream (training batches, evaluation) indexes these tensors directly; there is no
per-sample Python object, which is what makes an epoch over cached features cheap.

torch is imported only where tensors are made (:meth:`Split.from_arrays`): declaring a dataset --
its generator's ``Config``, its modalities -- must not need torch, because the Snakemake DAG reads
those declarations when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Task = Literal["classification", "regression"]
SPLITS: tuple[str, str, str] = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        name: ``train``, ``val`` or ``test``.
        inputs: modality -> float32 tensor of shape ``(n, *shape)``.
        labels: ``(n,)`` int64 class ids (classification) or float32 targets (regression).
        sample_ids: ``(n,)`` array of unique sample identifiers.
        groups: optional ``(n,)`` array of group ids (speaker, actor, ...) that never cross splits.
        annotations: optional per-sample string columns carried for analysis only (e.g. which
            modalities carry the label in the synthetic set); never seen by a model.
        source: the Parquet file of a split left on disk because the dataset exceeds the memory
            budget (:func:`mcr.data.contract.read_dataset`); its ``inputs`` are then
            :class:`~mcr.data.contract.columns.ParquetColumn` objects read in slices, and
            training streams its batches from this file. ``None`` for in-memory splits.
    """

    name: str
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    sample_ids: np.ndarray
    groups: np.ndarray | None = None
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def from_arrays(
        cls,
        name: str,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        sample_ids: np.ndarray,
        **metadata: object,
    ) -> Split:
        """A split whose tensors share memory with the given (contiguous) numpy arrays."""
        import torch

        return cls(
            name=name,
            inputs={m: torch.from_numpy(x) for m, x in inputs.items()},
            labels=torch.from_numpy(labels),
            sample_ids=sample_ids,
            **metadata,  # type: ignore[arg-type]
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """A copy whose tensors live on ``device`` (numpy metadata stays on the host)."""
        if self.source is not None:
            raise TypeError(
                f"{self.source}: the {self.name} split is streamed from disk and is not moved "
                "to a device whole"
            )
        return Split(
            name=self.name,
            inputs={m: x.to(device) for m, x in self.inputs.items()},
            labels=self.labels.to(device),
            sample_ids=self.sample_ids,
            groups=self.groups,
            annotations=self.annotations,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset; stored inside every checkpoint."""

    name: str
    task: Task
    num_classes: int  # 1 for regression
    modalities: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "regression" else self.num_classes

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "task": self.task,
            "num_classes": self.num_classes,
            "modalities": list(self.modalities),
            "shapes": {m: list(s) for m, s in self.shapes.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> DatasetInfo:
        return cls(
            name=d["name"],
            task=d["task"],
            num_classes=int(d["num_classes"]),
            modalities=tuple(d["modalities"]),
            shapes={m: tuple(s) for m, s in d["shapes"].items()},
        )


@dataclass(frozen=True)
class MultimodalDataset:
    """A dataset with its three splits; ``info`` describes modalities, shapes and the task."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)
