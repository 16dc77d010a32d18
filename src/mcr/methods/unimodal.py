"""Unimodal model (docs/baselines.md §2): one encoder and a linear head, trained on one modality.

Its checkpoints feed the ensemble, the uni-pretrained baselines and MCR's optional unimodal
initialisation (as DAG edges in the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcr.config import param
from mcr.methods.base import Method
from mcr.methods.registry import METHODS


@dataclass(frozen=True)
class UnimodalConfig:
    modality: str = param(
        "", "the modality, set from the run name unimodal_<modality>", source="run name"
    )


@METHODS.register("unimodal")
class UnimodalMethod(Method):
    """The model holds only ``config.modality``; its fused head is ``W z + b``."""

    Config = UnimodalConfig

    def check_supported(self) -> None:
        if self.config.modality not in self.info.modalities:
            raise ValueError(
                f"no modality {self.config.modality!r}; use unimodal_<modality> with one of "
                f"{', '.join(self.info.modalities)}"
            )
        super().check_supported()

    def modalities(self, available: tuple[str, ...]) -> tuple[str, ...]:
        return (self.config.modality,)
