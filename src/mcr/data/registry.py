"""The dataset registry: a name maps to a class with a ``Config`` dataclass and ``build(config)``."""

from __future__ import annotations

from typing import Any, Protocol

from mcr.data.dataset import MultimodalDataset
from mcr.registry import Registry


class DatasetBuilder(Protocol):
    """What a registered dataset provides: its params dataclass and a builder."""

    Config: type

    @staticmethod
    def build(config: Any) -> MultimodalDataset: ...


DATASETS: Registry[type[DatasetBuilder]] = Registry("dataset")
