"""Batched inference over a whole split and the validation metrics the loop selects on."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mcr import metrics
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import task_loss
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@torch.no_grad()
def predict(
    model: MultimodalModel, inputs: Mapping[str, torch.Tensor], batch_size: int = 1024
) -> ModelOutput:
    """Eval-mode forward pass over all rows, in chunks, concatenated into one output."""
    model.eval()
    device = next(model.parameters()).device
    n = len(next(iter(inputs.values())))
    chunks = []
    for start in range(0, n, batch_size):
        part = {m: inputs[m][start : start + batch_size].to(device) for m in model.modalities}
        chunks.append(model(part))
    return ModelOutput(
        logits=torch.cat([c.logits for c in chunks]).float(),
        contributions={
            m: torch.cat([c.contributions[m] for c in chunks]).float() for m in model.modalities
        },
        bias=chunks[0].bias.detach().float(),
        unimodal_logits={
            m: torch.cat([c.unimodal_logits[m] for c in chunks]).float()
            for m in chunks[0].unimodal_logits
        },
        latents={m: torch.cat([c.latents[m] for c in chunks]).float() for m in model.modalities},
    )


def validation_metrics(
    info: DatasetInfo, out: ModelOutput, labels: torch.Tensor
) -> dict[str, float]:
    """Loss, headline metric and per-modality in-model metric of a prediction."""
    labels = labels.to(out.logits.device)
    result = {"loss": float(task_loss(info, out.logits, labels))}
    if info.task == "regression":
        result["mae"] = metrics.mean_absolute_error(out.logits, labels)
        for m in out.modalities:
            result[f"in_model_mae[{m}]"] = metrics.mean_absolute_error(
                out.in_model_logits(m), labels
            )
    else:
        result["accuracy"] = metrics.accuracy(out.logits, labels)
        for m in out.modalities:
            result[f"in_model_accuracy[{m}]"] = metrics.accuracy(out.in_model_logits(m), labels)
    return result
