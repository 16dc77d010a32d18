"""MLB, Multi-Loss Balanced gradient modulation (Kontras et al., BMVC 2024; docs/baselines.md §7).

A multi-loss model ``L = task(fused) + w * sum_m task(h_m(z_m))`` whose *unimodal heads* give the
per-step performance estimates; each step, every modality's gradients are rescaled so the weak
modality is accelerated and the strong one decelerated, and the rescaling fades as they equalise:

    s_i = sum_{j in batch} softmax(h_i(x_i^j))_{y_j}
    r_i = (1/(M-1) sum_{m != i} s_m) / s_i
    beta_i = beta_max if r_i > 1 else 2
    k_i = 1 + (beta_i - 1) * tanh(alpha * (r_i - 1))

The gradients of encoder ``i`` *and* of its fused-head weights ``W_i`` are multiplied by ``k_i``
(as the official code does with ``enc_i`` and ``fc_i_lin.weight``); the unimodal heads ``h_i`` and
the shared fusion bias are left alone. ``k_i >= 1`` for a weak modality (``r_i > 1``) when
``beta_max >= 1``; ``k_i <= 1`` for a strong one.

Deviations and choices, on purpose:

* The formula is the MLB README's (``tanh_mode: 2`` in the code, ``beta`` below vs above balance).
  The MCR code base's default mode is ``k = 1 + tanh(alpha * (r - 1))`` on both sides -- the same
  as ``beta_max = 2`` here.
* M >= 2 modalities: "the other modality's score" becomes the mean score of the others (the
  README's ``1/(M-1)`` form); the official two-modality code divides the two scores directly,
  which is the M = 2 case of the same expression.
* Regression: ``s_i`` uses ``exp(-|h_i(x) - y|)`` in place of the class probability
  (:func:`mcr.methods.modulation.batch_scores`), so ratios keep their meaning.
* A zero score (possible only through underflow) is clamped to 1e-12 rather than dividing by 0.
* The modulation is active for the whole run (the official starting/ending-epoch window defaults
  to the whole run as well).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from mcr.config import param
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import Batch, Losses, Method, unimodal_losses
from mcr.methods.modulation import (
    batch_scores,
    encoder_parameters,
    mean_of_others,
    scale_gradients,
)
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MLBConfig:
    """Defaults: MCR code base run.sh, CREMA-D ResNet row (docs/baselines.md §7)."""

    alpha: float = param(
        0.5,
        "tanh steepness of k",
        source="MCR run.sh CREMA-D ResNet (AVE 2.0, Conformer 5.0)",
        ge=0,
    )
    # k = 1 + (beta_max - 1) * tanh(.) stays > 0 only for beta_max >= 0
    beta_max: float = param(
        10.0,
        "max speed-up of the weak modality",
        source="MCR run.sh CREMA-D ResNet (AVE 1)",
        ge=0,
    )
    unimodal_weight: float = param(
        1.0,
        "weight of each h_m loss",
        source="MLB README L = CE(o) + sum_m CE(h_m)",
        ge=0,
    )


def mlb_coefficients(
    scores: Mapping[str, torch.Tensor], alpha: float, beta_max: float
) -> dict[str, torch.Tensor]:
    """``k_m`` per modality from batch scores (0-dim tensors; no host synchronisation)."""
    coefficients = {}
    for m, s in scores.items():
        ratio = mean_of_others(scores, m) / s.clamp_min(1e-12)
        beta = 2.0 + (beta_max - 2.0) * (ratio > 1).to(ratio.dtype)  # no host sync
        coefficients[m] = 1 + (beta - 1) * torch.tanh(alpha * (ratio - 1))
    return coefficients


@METHODS.register("mlb")
class MLBMethod(Method):
    """Multi-loss training whose encoder + ``W_m`` gradients are rescaled by ``k_m`` each step."""

    Config = MLBConfig
    trains_unimodal_heads = True
    min_modalities = 2

    def __init__(self, config: MLBConfig, info: DatasetInfo) -> None:
        super().__init__(config, info)
        #: ``k_m`` applied at the last ``after_backward`` (for inspection and tests).
        self.last_coefficients: dict[str, torch.Tensor] = {}

    def coefficients(self, out: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``k_m`` from the unimodal heads' scores on this batch."""
        scores = batch_scores(self.info, out.unimodal_logits, labels)
        return mlb_coefficients(scores, self.config.alpha, self.config.beta_max)

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        uni = unimodal_losses(self, batch, out)
        total = task + self.config.unimodal_weight * sum(uni.values())
        terms = {"task": task.detach(), **{k: v.detach() for k, v in uni.items()}}
        # Logged here (terms come from ``loss``); ``after_backward`` recomputes the same values.
        terms.update({f"k[{m}]": k for m, k in self.coefficients(out, batch.labels).items()})
        return Losses(total, terms)

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        self.last_coefficients = self.coefficients(out, batch.labels)
        for m, k in self.last_coefficients.items():
            params = [*encoder_parameters(model, m), *model.fusion.modality_parameters(m)]
            scale_gradients(params, k)
