"""Ensemble of unimodal models (docs/baselines.md §2, "UME"; MCR's ``ens``): no joint training.

Prediction = ``sum_m (l_m - mu_m) / sigma_m`` with ``l_m`` the logits of the unimodal model of
modality ``m``. The released code standardises over each *batch*, which makes a test prediction
depend on the other samples of its batch (docs/baselines.md §17.4); here ``mu_m, sigma_m`` are fixed
once from the validation split. Because standardisation is affine, the ensemble *is* a linear
late-fusion model (``W_m' = W_m / sigma_m``, ``b' = sum_m (b_m - mu_m) / sigma_m``), so it is
evaluated with exactly the same code as every trained method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mcr.config import param
from mcr.methods.base import Method, SetupContext
from mcr.methods.registry import METHODS
from mcr.methods.unimodal_init import load_unimodal_weights
from mcr.models.multimodal import MultimodalModel


@dataclass(frozen=True)
class EnsembleConfig:
    eval_batch_size: int = param(
        1024,
        "rows per forward pass when computing the logit statistics (memory only)",
        source="ours",
        ge=2,
    )


@torch.no_grad()
def logit_statistics(model: MultimodalModel, inputs: torch.Tensor, batch_size: int):
    """Mean and standard deviation over all logits of a unimodal model on ``inputs``.

    ``inputs`` may live anywhere (a streamed split's column included): each chunk is moved to
    the model's device on its own.
    """
    model.eval()
    (m,) = model.modalities
    device = next(model.parameters()).device
    logits = torch.cat([
        model({m: inputs[i : i + batch_size].to(device)}).logits
        for i in range(0, len(inputs), batch_size)
    ])  # fmt: skip
    return logits.mean(), logits.std().clamp_min(1e-12)


@METHODS.register("ensemble")
class EnsembleMethod(Method):
    Config = EnsembleConfig
    unimodal_runs = True
    trains_unimodal_heads = True  # h_m are the unimodal models' heads
    trains = False
    min_modalities = 2

    @torch.no_grad()
    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        load_unimodal_weights(model, context)
        if context.val is None:
            raise ValueError("the ensemble needs the validation split for its statistics")
        bias = torch.zeros_like(model.fusion.bias)
        for m in model.modalities:
            source = context.unimodal_models[m]
            mu, sigma = logit_statistics(
                source, context.val.inputs[m], self.config.eval_batch_size
            )
            model.fusion.weights[m].weight.copy_(source.fusion.weights[m].weight / sigma)
            bias += (source.fusion.bias - mu) / sigma
        model.fusion.bias.copy_(bias)
