"""Initialising a multimodal model from separately trained unimodal models.

Shared by the ensemble, the uni-pretrained baselines and MCR's ``init_from_unimodal``: encoder
``m`` gets the unimodal run's encoder weights, and head ``h_m`` gets that run's fused head
(``W z + b``), so ``h_m`` reproduces the unimodal model exactly.
"""

from __future__ import annotations

import torch

from mcr.methods.base import SetupContext
from mcr.models.multimodal import MultimodalModel


def require_unimodal_models(model: MultimodalModel, context: SetupContext) -> None:
    missing = [m for m in model.modalities if m not in context.unimodal_models]
    if missing:
        raise ValueError(
            f"needs a trained unimodal model for every modality; missing: {', '.join(missing)} "
            "(train unimodal_<modality> first and pass it as --unimodal <modality>=<run dir>)"
        )


@torch.no_grad()
def load_unimodal_weights(model: MultimodalModel, context: SetupContext) -> None:
    """Copy each unimodal run's encoder into ``model`` and its head into ``h_m``."""
    require_unimodal_models(model, context)
    for m in model.modalities:
        source = context.unimodal_models[m]
        model.encoders[m].load_state_dict(source.encoders[m].state_dict())
        if m in model.unimodal_heads:
            head = model.unimodal_heads[m]
            head.weight.copy_(source.fusion.weights[m].weight)
            head.bias.copy_(source.fusion.bias)
