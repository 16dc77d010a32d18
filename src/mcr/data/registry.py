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

    @staticmethod
    def raw_sources(config: Any) -> tuple[str, ...]:
        """Raw sources (``data.raw`` keys, extracted by the pipeline) the builder reads."""
        ...


DATASETS: Registry[type[DatasetBuilder]] = Registry("dataset")
