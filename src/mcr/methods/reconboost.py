"""ReconBoost: alternating boosting stages (Hua et al., ICML 2024; docs/baselines.md §11).

The learner of modality ``m`` is the fused head's own per-modality output
``o_m = W_m z_m + b/M`` (``ModelOutput.in_model_logits``), so the ensemble of all learners
``sum_m o_m = sum_m W_m z_m + b`` *is* the fused prediction: no prediction override is needed and
evaluation reads the ensemble as every other method's fused logits.

Schedule, by epoch (``on_epoch_start``), one cycle = for each modality in order:
``epochs_per_stage`` epochs of that modality's stage, then ``correct_epochs`` epochs of global
rectification (``m1, correct, m2, correct, m1, ...``, as the official loop and the MCR copy's
``get_stage``).

* Modality ``m``'s stage: with ``o_ens = sg(sum_{j != m} o_j)`` (the other learners, detached,
  nothing else) and ``p = softmax``, ``C`` classes,
  ``L_boost = mean_i (w2 p_ens(y_i) - w1) log p_m(y_i) / C`` -- the reference's
  ``-w1 mean_c(y_c log p_m,c) + w2 mean_c(y_c sg(p_ens)_c log p_m,c)``: samples the other
  learners already get right are down-weighted, as in gradient boosting. Plus the memory /
  gradient-alignment term ``alpha * MSE(softmax(o_m), sg(softmax(o_prev)))``. Only ``o_m`` carries
  a gradient, so only modality ``m``'s player (encoder, ``W_m``) and the shared bias receive one;
  the other players' ``.grad`` stay ``None`` and Adam leaves them untouched.
* Rectification: the plain task loss on the fused logits, everything trainable.

Deliberate deviations from the reference code (``train.py``; MCR ``Bias_Infusion_ReconBoost``):

* The GA term has a gradient: the reference computes ``MSE(sg(softmax(o_m)), sg(softmax(o_prev)))``
  between two detached tensors, so it contributes nothing (docs/baselines.md §17.5). ``alpha: 0``
  reproduces the reference's effective behaviour.
* GA target: by default (``ga_target: snapshot``) ``o_prev`` is modality ``m``'s own learner as
  it was at the start of the stage (a frozen eval-mode copy of ``encoder_m``, ``W_m`` and ``b``):
  the memory term then keeps the learner close to what it knew. Both reference codes instead
  compare with the learner trained in the previous stage (the other modality's current output);
  ``ga_target: previous_stage`` does that (the previous modality in the cycle for M > 2).
  As in the reference, the very first stage has no GA term (with ``snapshot``: every modality's
  first stage, whose snapshot would be the random initialisation).
* No unimodal pre-training (the README's ``--use_pretrain``) and no learnable ``boost_rate``
  (fixed at 1: the fused weights can absorb a scale). The reference starts its ensemble from a
  constant ``c0`` until a learner is added; here untrained learners are part of it from the
  start (both give near-uniform ``p_ens`` at first).
* The shared bias ``b`` trains in every stage, as the reference's shared head (``common_space``).
* M >= 2 modalities: the ensemble is the sum of the other M - 1 learners; stages cycle through
  the modalities in order. Classification only (the loss is defined on class probabilities).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

RECTIFY = -1  # the stage index of global rectification


@dataclass(frozen=True)
class ReconBoostConfig:
    """Defaults: MCR run.sh, CREMA-D ResNet (w1 3, stages 1/1); paper/README where MCR is silent."""

    weight1: float = param(
        3.0,
        "w1, weight of the learner's log-likelihood",
        source="MCR run.sh CREMA-D ResNet (README: 5 CREMA-D, 4 AVE/ModelNet40;"
        " MCR Conformer/AVE: 5)",
        ge=0,
    )
    weight2: float = param(
        1.0,
        "w2, weight of the ensemble-confidence term",
        source="README and MCR",
        ge=0,
    )
    alpha: float = param(
        0.5,
        "weight of the GA / memory term",
        source="README, BalanceMM",
        ge=0,
    )
    epochs_per_stage: int = param(
        1,
        "epochs of one modality's stage",
        source="MCR CREMA-D ResNet (README: 4)",
        ge=1,
    )
    correct_epochs: int = param(
        1,
        "global rectification epochs after each stage",
        source="MCR (README: 4)",
        ge=0,
    )
    # see the module docstring
    ga_target: Literal["snapshot", "previous_stage"] = param(
        "snapshot",
        "GA target: the learner's own snapshot at the stage start | the previous stage's"
        " learner (the reference codes)",
        source="ours (reference: previous_stage)",
    )


def stage_of(epoch: int, num_modalities: int, epochs_per_stage: int, correct_epochs: int) -> int:
    """The modality index trained at ``epoch`` (0-based), or ``RECTIFY``."""
    block = epochs_per_stage + correct_epochs
    position = epoch % (num_modalities * block)
    return position // block if position % block < epochs_per_stage else RECTIFY


def boosting_weights(
    ensemble_logits: torch.Tensor, labels: torch.Tensor, w1: float, w2: float
) -> torch.Tensor:
    """Per-sample ``(w2 p_ens(y) - w1) / C``: the coefficient of ``log p_m(y)`` in ``L_boost``."""
    p_true = F.softmax(ensemble_logits.detach().float(), dim=-1).gather(1, labels.view(-1, 1))
    return (w2 * p_true.squeeze(1) - w1) / ensemble_logits.shape[-1]


def boosting_loss(
    learner_logits: torch.Tensor,
    ensemble_logits: torch.Tensor,
    labels: torch.Tensor,
    w1: float,
    w2: float,
) -> torch.Tensor:
    """``mean_i (w2 p_ens(y_i) - w1) log p_m(y_i) / C``; the ensemble is not trained on."""
    log_p = F.log_softmax(learner_logits.float(), dim=-1).gather(1, labels.view(-1, 1))
    return (boosting_weights(ensemble_logits, labels, w1, w2) * log_p.squeeze(1)).mean()


class _Snapshot(nn.Module):
    """A frozen copy of one learner, ``W_m enc_m(x) + b/M``, as it was at a stage's start."""

    def __init__(self, model: MultimodalModel, modality: str) -> None:
        super().__init__()
        self.modality = modality
        self.scale = 1.0 / len(model.modalities)
        self.encoder = copy.deepcopy(model.encoders[modality])
        self.weight = copy.deepcopy(model.fusion.weights[modality])
        self.register_buffer("bias", model.fusion.bias.detach().clone())
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight(self.encoder(x)) + self.bias * self.scale


@METHODS.register("reconboost")
class ReconBoostMethod(Method):
    """Alternating per-modality boosting stages and global rectification epochs."""

    Config = ReconBoostConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: ReconBoostConfig, info) -> None:
        super().__init__(config, info)
        self.epoch = 0
        self.stage = RECTIFY
        self.snapshot: _Snapshot | None = None
        self._snapshot_start = -1  # first epoch of the stage the snapshot belongs to
        self._loaded: Mapping[str, Any] | None = None  # a resumed snapshot, rebuilt lazily

    def stage_at(self, epoch: int) -> int:
        cfg = self.config
        return stage_of(epoch, len(self.info.modalities), cfg.epochs_per_stage, cfg.correct_epochs)

    def _stage_start(self, epoch: int) -> int:
        """First epoch of the modality stage ``epoch`` belongs to (each block starts with one)."""
        return epoch - epoch % (self.config.epochs_per_stage + self.config.correct_epochs)

    def ga_active(self, epoch: int) -> bool:
        """No memory term in the first stage (``previous_stage``) or in a modality's first stage
        (``snapshot``: nothing learnt yet to remember)."""
        if self.config.alpha == 0 or self.stage_at(epoch) == RECTIFY:
            return False
        cfg = self.config
        if self.config.ga_target == "previous_stage":
            return epoch >= cfg.epochs_per_stage
        return epoch >= len(self.info.modalities) * (cfg.epochs_per_stage + cfg.correct_epochs)

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        self.epoch, self.stage = epoch, self.stage_at(epoch)
        if self.config.ga_target != "snapshot" or not self.ga_active(epoch):
            self.snapshot, self._loaded = None, None  # no memory term: nothing to remember
            return
        modality = model.modalities[self.stage]
        start = self._stage_start(epoch)
        if self._loaded is not None and self._loaded["start"] == start:
            # resumed mid-stage: the snapshot is of a model that no longer exists
            self.snapshot = _Snapshot(model, modality)
            self.snapshot.load_state_dict(self._loaded["state"])
            self._snapshot_start = start
        elif self.snapshot is None or self._snapshot_start != start:
            self.snapshot = _Snapshot(model, modality)
            self._snapshot_start = start
        self._loaded = None

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        terms = {"task": task.detach(), "stage": torch.tensor(float(self.stage))}
        if self.stage == RECTIFY:
            return Losses(task, terms)
        cfg, modality = self.config, model.modalities[self.stage]
        learner = out.in_model_logits(modality)
        ensemble = sum(out.in_model_logits(m).detach() for m in out.modalities if m != modality)
        boost = boosting_loss(learner, ensemble, batch.labels, cfg.weight1, cfg.weight2)
        total, terms["boost"] = boost, boost.detach()
        if self.ga_active(self.epoch):
            if cfg.ga_target == "snapshot":
                assert self.snapshot is not None, "on_epoch_start takes the snapshot"
                previous = self.snapshot(batch.inputs[modality])
            else:
                index = (self.stage - 1) % len(model.modalities)
                previous = out.in_model_logits(model.modalities[index]).detach()
            ga = F.mse_loss(
                F.softmax(learner.float(), dim=-1), F.softmax(previous.float(), dim=-1).detach()
            )
            total = total + cfg.alpha * ga
            terms["ga"] = ga.detach()
        return Losses(total, terms)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"snapshot": None}
        if self.snapshot is not None:
            state["snapshot"] = {
                "start": self._snapshot_start,
                "state": self.snapshot.state_dict(),
            }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.snapshot, self._loaded = None, state.get("snapshot")
