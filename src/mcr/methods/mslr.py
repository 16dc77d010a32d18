"""MSLR, Modality-Specific Learning Rates, dynamic variant (Yao & Mihalcea, Findings of ACL 2022;
docs/baselines.md §8).

Joint training on the fused loss; each modality's parameter group (its encoder, ``W_m`` and
``h_m``: ``model.player_parameters(m)``) gets its own learning-rate multiplier, set once per epoch
from that modality's validation accuracy:

    c_m(e) = c0_m * acc_m(e-1) / mean(acc_m(e-K), ..., acc_m(e-1))

``acc_m`` is the in-model accuracy of ``W_m z_m + b/M`` on the validation split, ``K`` the memory.
A modality that is still improving (last accuracy above its recent mean) learns faster, one that
has plateaued or degrades learns slower. Until ``K`` epochs of history exist the multiplier is
exactly 1; the shared group (fusion bias) always keeps 1.

Deviations from the reimplementations (there is no official code), on purpose:

* The multiplier scales the group's *learning rate*, as the paper describes. The AGM and MCR
  reimplementations multiply the encoder *gradients* instead, which Adam (scale-invariant per
  parameter) almost entirely undoes; the learning rate is what the method means to change.
* The multiplier covers the modality's whole player (encoder, ``W_m``, ``h_m``), the MCR
  reimplementation the encoder only.
* Before the window fills the multiplier is 1 (MCR code: ``c0`` times a ratio of 1, i.e. ``c0``
  from the start), and the window includes the latest epoch (MCR code: the latest accuracy over the
  mean of the K epochs before it, starting once more than K epochs have run).
* Any number of modalities >= 2: the formula is per modality and generalises as is.
* A zero mean accuracy over the window (nothing learned yet) gives a multiplier of 1, not a
  division by zero.
* Classification only: the ratio is built on accuracies (the MCR paper's Table 1 marks MSLR
  not applicable to regression).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mcr.config import param
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import Batch, Losses, Method
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MSLRConfig:
    """Defaults: the AGM repo's memory; initial multipliers 1 (ours, dataset-neutral)."""

    memory: int = param(
        5,
        "K, epochs of validation accuracy averaged",
        source="AGM repo K=5 (MCR run.sh: 20 CREMA-D, 10 AVE)",
        ge=1,
    )
    initial_multipliers: tuple[float, ...] = param(
        (),
        "c0 per modality, in the dataset's modality order; empty = all 1.0",
        source="ours (AGM repo c0 = (0.9, 1.1); MCR run.sh (0.7, 1.3), audio, video)",
        gt=0,
    )


def mslr_multiplier(history: list[float], memory: int, initial: float) -> float:
    """``c0 * acc_last / mean(last K accuracies)``; 1 until K epochs exist or if the mean is 0."""
    if len(history) < memory:
        return 1.0
    window = history[-memory:]
    mean = sum(window) / len(window)
    if mean <= 0:
        return 1.0
    return initial * history[-1] / mean


@METHODS.register("mslr")
class MSLRMethod(Method):
    """Joint training with per-modality learning rates driven by validation accuracy."""

    Config = MSLRConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: MSLRConfig, info: DatasetInfo) -> None:
        super().__init__(config, info)
        names = self.modalities(info.modalities)
        #: modality -> validation in-model accuracy of every finished epoch.
        self.history: dict[str, list[float]] = {m: [] for m in names}
        #: modality -> learning-rate multiplier of the current epoch.
        self.multipliers: dict[str, float] = {m: 1.0 for m in names}

    def check_supported(self) -> None:
        super().check_supported()
        names = self.modalities(self.info.modalities)
        given = self.config.initial_multipliers
        if given and len(given) != len(names):
            raise ValueError(
                f"initial_multipliers={list(given)}: expected {len(names)} values, one per "
                f"modality in the order {', '.join(names)}"
            )

    def initial_multiplier(self, modality: str) -> float:
        """``c0`` of ``modality`` (1.0 when none are configured)."""
        given = self.config.initial_multipliers
        if not given:
            return 1.0
        return float(given[list(self.history).index(modality)])

    def _update_multipliers(self) -> None:
        self.multipliers = {
            m: mslr_multiplier(h, self.config.memory, self.initial_multiplier(m))
            for m, h in self.history.items()
        }

    def lr_multiplier(self, group: str) -> float:
        return self.multipliers.get(group, 1.0)  # "shared" (fusion bias) always 1

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        losses = super().loss(model, batch, out)
        for m, c in self.multipliers.items():
            losses.terms[f"lr_mult[{m}]"] = torch.tensor(c, dtype=torch.float32)
        return losses

    def on_epoch_end(
        self, epoch: int, model: MultimodalModel, val_metrics: Mapping[str, float]
    ) -> None:
        for m, h in self.history.items():
            h.append(float(val_metrics[f"in_model_accuracy[{m}]"]))
        self._update_multipliers()

    def state_dict(self) -> dict[str, Any]:
        return {"history": {m: list(h) for m, h in self.history.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        stored = state["history"]
        if set(stored) != set(self.history):
            raise ValueError(
                f"MSLR state holds modalities {sorted(stored)}, expected {sorted(self.history)}"
            )
        self.history = {m: [float(a) for a in stored[m]] for m in self.history}
        self._update_multipliers()
