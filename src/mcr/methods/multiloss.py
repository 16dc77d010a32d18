"""Multi-loss (docs/baselines.md §4): fused loss plus one auxiliary loss per unimodal head."""

from __future__ import annotations

from dataclasses import dataclass

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method, unimodal_losses
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MultiLossConfig:
    unimodal_weight: float = param(
        1.0,
        "weight of each h_m loss",
        source="MCR code multiloss.json (fused 1, unimodal 1/1)",
        ge=0,
    )


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
