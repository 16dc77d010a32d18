"""The typed result of a multimodal forward pass (instead of a dict of strings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelOutput:
    """Everything a method or an evaluator may read from one forward pass.

    Attributes:
        logits: fused prediction ``(B, C)`` (``C = 1`` for regression).
        contributions: modality -> its additive share of the fused logits, ``W_m z_m`` ``(B, C)``;
            ``logits = sum(contributions) + bias``.
        bias: the fusion head's shared bias ``(C,)``.
        unimodal_logits: modality -> ``h_m(z_m)`` from the modality's own head (empty when the
            model has none, e.g. a unimodal model whose fused head already is that head).
        latents: modality -> pooled encoder output ``z_m`` ``(B, d_m)``.
    """

    logits: torch.Tensor
    contributions: dict[str, torch.Tensor]
    bias: torch.Tensor
    unimodal_logits: dict[str, torch.Tensor]
    latents: dict[str, torch.Tensor]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.latents)

    def in_model_logits(self, modality: str) -> torch.Tensor:
        """The fused head's prediction from one modality alone: ``W_m z_m + b / M``.

        This is the per-modality output used by OGM-style methods and by our utilisation metric.
        """
        return self.contributions[modality] + self.bias / len(self.contributions)
