"""G-Blending, gradient blending (Wang, Tran, Feiszli, CVPR 2020; docs/baselines.md §15), online.

A multi-head model is trained on a weighted sum of task losses, one per head ``k`` in
``{fused, h_m for every modality}``: ``L = sum_k w_k L_k``. The weights start uniform,
``1 / (M + 1)``, and are re-estimated at the end of every super-epoch from how each head
generalises (``G``) and overfits (``O``) over the window ``[N, N + n]``::

    O = L^V - L^T          dG_k = L^V_N - L^V_{N+n}          dO_k = O_{N+n} - O_N
    w_k ∝ max(dG_k, 0) / max(dO_k, eps)^2        normalised to sum 1

``L^T`` of an epoch is the head's mean training-batch loss over that epoch (accumulated in
``loss``); ``L^V`` is its loss on the validation split after that epoch (eval mode, no grad).
The trajectory's first point is epoch 0; then a window ends at every epoch ``e`` with
``(e + 1) % super_epoch == 0`` (so the first window is ``super_epoch - 1`` epochs long, the
later ones ``super_epoch``), and its weights hold from the next epoch on. When every head's
weight comes out 0 (no head improved on validation) the previous weights are kept.

Deviations from the paper and the reference implementations, on purpose:

* The paper, MultiBench and BalanceMM estimate ``G``/``O`` from separate look-ahead trainings
  (one per head, ``M + 1`` extra trainings per super-epoch) on a held-out part of the training
  set (MultiBench ``v_rate`` 8 %; BalanceMM uses its evaluation loader). We read them off the
  jointly trained heads' own trajectory and the validation split: no extra training, no data
  taken from training. The validation split is also what model selection uses; test is never
  seen. Because each head is trained with its current weight, a head weighted near 0 learns
  little and tends to stay low -- a feedback the look-ahead variant does not have.
* ``L^T`` is the running mean during the epoch (train mode, parameters moving), not a separate
  pass; both window ends are measured the same way, so the offset largely cancels in ``dO``.
* ``dO <= eps`` is floored at ``eps`` (MultiBench replaces a non-positive ``O`` by 1e-4), so a
  head that generalised better without overfitting more gets a very large (normalised: nearly
  all) weight. ``max(dG, 0)`` gives a head whose validation loss rose weight 0, where BalanceMM's
  ``abs(G)`` would reward it; MultiBench's default (``delta`` off) uses the final validation
  loss as ``G``, not its change -- we follow the paper.

Any task (the task loss is CE or L1); ``M >= 2`` modalities, ``M + 1`` heads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mcr.config import param
from mcr.data.dataset import DatasetInfo, Split
from mcr.methods.base import Batch, Losses, Method, SetupContext
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

FUSED = "fused"  # key of the fused head among the per-modality heads
VAL_ROWS = 1024  # rows per forward pass when measuring the validation losses (memory only)

#: head -> ``[L^T, L^V]`` at one point of the trajectory
Snapshot = dict[str, list[float]]


@dataclass(frozen=True)
class GBlendConfig:
    """Defaults: BalanceMM ``GBlending`` (``method: online, super_epoch: 10``), MultiBench eps."""

    super_epoch: int = param(
        10,
        "n, epochs per weight re-estimation window",
        source="BalanceMM GBlending (MultiBench: 20)",
        ge=1,
    )
    eps: float = param(
        1e-4,
        "floor of the overfitting change dO",
        source="MultiBench (a non-positive O becomes 1e-4)",
        gt=0,
    )


def blend_weights(
    start: Mapping[str, tuple[float, float] | list[float]],
    end: Mapping[str, tuple[float, float] | list[float]],
    previous: Mapping[str, float],
    eps: float = 1e-4,
) -> dict[str, float]:
    """Per-head weights ``max(dG, 0) / max(dO, eps)^2``, normalised to sum 1.

    Args:
        start, end: head -> ``(L^T, L^V)`` at the window's first and last epoch.
        previous: the weights to keep when no head has a positive (finite) weight.
    """
    raw = {}
    for k, (train_end, val_end) in end.items():
        train_start, val_start = start[k]
        gain = val_start - val_end
        overfit = (val_end - train_end) - (val_start - train_start)
        raw[k] = max(gain, 0.0) / max(overfit, eps) ** 2
    total = sum(raw.values())
    if not (total > 0 and math.isfinite(total)):  # also NaN losses: keep what we had
        return dict(previous)
    return {k: v / total for k, v in raw.items()}


@METHODS.register("gblend")
class GBlendMethod(Method):
    """``sum_k w_k task(head_k)``; ``w`` re-estimated from the heads' trajectory each window."""

    Config = GBlendConfig
    trains_unimodal_heads = True
    min_modalities = 2

    def __init__(self, config: GBlendConfig, info: DatasetInfo) -> None:
        super().__init__(config, info)
        self.heads: tuple[str, ...] = (FUSED, *self.modalities(info.modalities))
        self.weights = {k: 1.0 / len(self.heads) for k in self.heads}
        self.window_start: Snapshot | None = None
        self._val: Split | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._batches = 0

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        if context.val is None:
            raise ValueError("gblend estimates its weights on the validation split; none given")
        self._val = context.val

    def head_losses(self, labels: torch.Tensor, out: ModelOutput) -> dict[str, torch.Tensor]:
        """Task loss of every head: the fused prediction and each unimodal head ``h_m``."""
        losses = {FUSED: self.task_loss(out.logits, labels)}
        for m in self.heads[1:]:
            losses[m] = self.task_loss(out.unimodal_logits[m], labels)
        return losses

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        self._sums, self._batches = {}, 0

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        losses = self.head_losses(batch.labels, out)
        total = sum(self.weights[k] * losses[k] for k in self.heads)
        for k, value in losses.items():  # L^T of this epoch, kept on device (no host sync)
            self._sums[k] = self._sums.get(k, 0.0) + value.detach().float()
        self._batches += 1
        terms = {"task": losses[FUSED].detach()}
        terms.update({f"uni[{m}]": losses[m].detach() for m in self.heads[1:]})
        terms.update(
            {f"w[{k}]": torch.tensor(w, device=total.device) for k, w in self.weights.items()}
        )
        return Losses(total, terms)

    @torch.no_grad()
    def validation_losses(self, model: MultimodalModel) -> dict[str, float]:
        """``L^V`` of every head on the whole validation split, eval mode, in chunks."""
        if self._val is None:
            raise RuntimeError("gblend.prepare was not called")
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        n = len(self._val)
        sums = dict.fromkeys(self.heads, 0.0)
        for start in range(0, n, VAL_ROWS):
            part = {
                m: self._val.inputs[m][start : start + VAL_ROWS].to(device)
                for m in model.modalities
            }
            labels = self._val.labels[start : start + VAL_ROWS].to(device)
            for k, value in self.head_losses(labels, model(part)).items():
                sums[k] += float(value) * len(labels)
        model.train(was_training)
        return {k: s / n for k, s in sums.items()}

    def on_epoch_end(
        self, epoch: int, model: MultimodalModel, val_metrics: Mapping[str, float]
    ) -> None:
        if self._batches == 0:
            return  # nothing trained this epoch: no trajectory point
        train = {k: float(s) / self._batches for k, s in self._sums.items()}
        self.observe(epoch, train, self.validation_losses(model))

    def observe(self, epoch: int, train: Mapping[str, float], val: Mapping[str, float]) -> bool:
        """Add epoch ``epoch``'s point ``(L^T, L^V)``; re-estimate at a window's end.

        Returns:
            Whether the weights were re-estimated.
        """
        point = {k: [float(train[k]), float(val[k])] for k in self.heads}
        if self.window_start is None:
            self.window_start = point  # the trajectory's first point
            return False
        if (epoch + 1) % self.config.super_epoch != 0:
            return False
        self.weights = blend_weights(self.window_start, point, self.weights, self.config.eps)
        self.window_start = point
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "weights": dict(self.weights),
            "window_start": self.window_start,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        start = state["window_start"]
        self.window_start = None if start is None else {k: list(v) for k, v in start.items()}
