"""Multi-loss (baselines.md §A.3): fused loss plus one auxiliary loss per unimodal head."""

from __future__ import annotations

from dataclasses import dataclass

from mcr.methods.base import Batch, Losses, Method
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MultiLossConfig:
    unimodal_weight: float = 1.0  # weight of each h_m loss; MCR code multiloss.json: 1/1/1

    def __post_init__(self) -> None:
        if self.unimodal_weight < 0:
            raise ValueError(f"unimodal_weight={self.unimodal_weight}: expected >= 0")


def unimodal_losses(method: Method, batch: Batch, out: ModelOutput) -> dict[str, object]:
    """Task loss of each unimodal head, keyed ``uni[<modality>]``."""
    return {
        f"uni[{m}]": method.task_loss(logits, batch.labels)
        for m, logits in out.unimodal_logits.items()
    }


@METHODS.register("multiloss")
class MultiLossMethod(Method):
    """``L = task(fused) + w * sum_m task(h_m(z_m))``, gradients into the encoders."""

    Config = MultiLossConfig
    trains_unimodal_heads = True
    min_modalities = 2

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        uni = unimodal_losses(self, batch, out)
        total = task + self.config.unimodal_weight * sum(uni.values())
        terms = {"task": task.detach(), **{k: v.detach() for k, v in uni.items()}}
        return Losses(total, terms)
