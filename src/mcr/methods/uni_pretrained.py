"""Uni-pretrained baselines (docs/baselines.md §2, after Du et al. 2023; MCR ``pre_frozen`` and
``pre_finetuned``): encoders start from the unimodal runs; only the fused loss is trained.

*Frozen* keeps the encoders fixed and in eval mode (dropout off, batch-norm statistics not
updated), so only the fusion head learns; *finetuned* trains everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcr.methods.base import Method, SetupContext
from mcr.methods.registry import METHODS
from mcr.methods.unimodal_init import load_unimodal_weights
from mcr.models.multimodal import MultimodalModel


@dataclass(frozen=True)
class UniPretrainedConfig:
    """No hyper-parameters besides the training ones (MCR run.sh: lr 1e-4, patience 50)."""


class _UniPretrained(Method):
    Config = UniPretrainedConfig
    unimodal_runs = True
    trains_unimodal_heads = True  # copied from the unimodal runs
    min_modalities = 2

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        load_unimodal_weights(model, context)
        model.unimodal_heads.requires_grad_(False)  # keep them equal to the unimodal models


@METHODS.register("uni_pre_frozen")
class UniPretrainedFrozenMethod(_UniPretrained):
    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        super().prepare(model, context)
        model.encoders.requires_grad_(False)

    def set_train_mode(self, model: MultimodalModel) -> None:
        model.train()
        model.encoders.eval()


@METHODS.register("uni_pre_finetuned")
class UniPretrainedFinetunedMethod(_UniPretrained):
    trains_unimodal_heads = False  # the encoders move away from the copied heads
