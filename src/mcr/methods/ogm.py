"""OGM and OGM-GE, on-the-fly gradient modulation (Peng et al., CVPR 2022; docs/baselines.md §5).

Per step, each modality's score ``s_m = sum_i softmax(o_m^i)_{y_i}`` is read from the fused
head's own per-modality outputs ``o_m = W_m z_m + b/2``. The dominant modality (``rho > 1``) has
its encoder gradients multiplied by ``k = 1 - tanh(alpha * rho)``; the other keeps ``k = 1``.
OGM-GE then adds ``N(0, std(g)^2)`` noise per parameter tensor to the modulated gradients.

Deviations, on purpose: the official code uses ``tanh(alpha * relu(rho))`` -- so ``k`` jumps from
1 to ``1 - tanh(alpha)`` at ``rho = 1``; ``formula: code`` (default) keeps it, ``formula: paper``
uses the issue's ``tanh(alpha * relu(rho - 1))``, continuous at balance. Like the MCR code
base, every encoder parameter is modulated (the official code: 4-D conv weights only). Two
modalities only: the ratio is defined for a pair (Table 1 marks OGM not applicable to three).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from mcr.config import param
from mcr.methods.base import Batch, Method
from mcr.methods.modulation import batch_scores, encoder_parameters, mean_of_others
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class OGMConfig:
    """Defaults: MCR run.sh, CREMA-D ResNet (alpha 1.0; 0.6 AVE ResNet); window: whole run."""

    alpha: float = param(
        1.0,
        "modulation strength: k = 1 - tanh(alpha * rho) for the dominant modality",
        source="MCR run.sh CREMA-D ResNet (0.6 AVE ResNet; OGM-GE README: 0.8 CREMA-D,"
        " 0.1 VGGSound)",
        ge=0,
    )
    modulation_starts: int = param(0, "first modulated epoch", source="official default", ge=0)
    modulation_ends: int = param(
        10_000,
        "last modulated epoch",
        source="MCR: the whole run (official: 50)",
        ge=0,
    )
    formula: Literal["code", "paper"] = param(
        "code",
        "tanh(alpha * rho) (official code) | tanh(alpha * (rho - 1)) (paper, continuous at"
        " balance)",
        source="official code",
    )
    noise: bool = param(
        False,
        "OGM-GE: add N(0, std(g)^2) noise to the modulated gradients",
        source="OGM (off; ogm_ge turns it on)",
    )

    def __post_init__(self) -> None:
        if self.modulation_ends < self.modulation_starts:
            raise ValueError("modulation_ends must be >= modulation_starts")


def ogm_coefficients(
    scores: dict[str, torch.Tensor], alpha: float, formula: str = "code"
) -> dict[str, float]:
    """``k_m`` per modality: ``< 1`` for the dominant one (``rho_m > 1``), exactly 1 otherwise."""
    coefficients = {}
    for m, s in scores.items():
        rho = float(s / mean_of_others(scores, m).clamp_min(1e-12))
        if rho > 1:
            x = rho if formula == "code" else rho - 1
            coefficients[m] = 1.0 - math.tanh(alpha * x)
        else:
            coefficients[m] = 1.0
    return coefficients


@METHODS.register("ogm")
class OGMMethod(Method):
    """Joint training whose dominant encoder's gradients are damped each step."""

    Config = OGMConfig
    min_modalities = 2
    max_modalities = 2

    def __init__(self, config: OGMConfig, info) -> None:
        super().__init__(config, info)
        self.epoch = 0
        self.last_coefficients: dict[str, float] = {}

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        self.epoch = epoch

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        if not self.config.modulation_starts <= self.epoch <= self.config.modulation_ends:
            self.last_coefficients = {}
            return
        logits = {m: out.in_model_logits(m) for m in out.modalities}
        scores = batch_scores(self.info, logits, batch.labels)
        self.last_coefficients = ogm_coefficients(scores, self.config.alpha, self.config.formula)
        for m, k in self.last_coefficients.items():
            for p in encoder_parameters(model, m):
                if p.grad is None:
                    continue
                # official: grad * k + N(0, std(grad before scaling) + 1e-8)
                std = p.grad.std() + 1e-8 if self.config.noise and p.grad.numel() > 1 else None
                p.grad.mul_(k)
                if std is not None:
                    p.grad.add_(torch.randn_like(p.grad) * std)


@dataclass(frozen=True)
class OGMGEConfig(OGMConfig):
    """OGM with generalisation enhancement: the Gaussian noise is on."""

    noise: bool = param(True, "OGM-GE Gaussian noise (on)", source="OGM-GE")


@METHODS.register("ogm_ge")
class OGMGEMethod(OGMMethod):
    Config = OGMGEConfig
