"""MLA, alternating unimodal adaptation (Zhang et al., CVPR 2024; docs/baselines.md §14).

Training never optimises a joint loss. Every batch is split into one optimiser step per
modality (the loop's sub-steps): step ``i`` minimises ``task(H(z_{m_i}), y)`` through the head
``H`` that all modalities share, so only encoder ``m_i`` and ``H`` receive a gradient. To keep
``H`` from forgetting what the previous modality taught it, an orthogonal-weight-modification
(OWM) projector ``P`` (``d x d``, starts at ``I``) rewrites the head's weight gradient before
each step (the official ``GSPlugin``)::

    r = mean_batch(z_{m_i})          k = P r
    P <- P - k k^T / (alpha_t + r^T k)      P <- P / ||P||_F
    grad W <- grad W P^T             alpha_t = 0.1 ** (1 + b / B)

with ``b`` the batch index within the epoch and ``B`` the batches per epoch. ``P`` is updated
first and then applied, as in the official code (and in OWM's own ``pro_weight``): the RLS
update already shrinks the current input direction by ``alpha_t / (alpha_t + r^T P r)``. One
``P`` is shared by all modalities and accumulates every modality's inputs, as the official
plugin keeps one. Prediction (validation, test) is the ``shared_head`` fusion: per sample,
``sum_m w_m H(z_m)`` with ``w_m = softmax_m(-entropy(softmax(H(z_m))))`` -- the paper's dynamic
fusion ``exp(max_m' E_m' - E_m)`` normalised (``mcr.models.fusion.SharedHeadFusion``).

Deviations from the reference code, on purpose:

* The official projector only fires for a parameter named exactly ``module.weight`` (true only
  under ``DataParallel`` when handed the whole model; it is handed ``fc_out``, whose weight is
  named ``weight``), so it is a silent no-op there. Ours always projects ``H``'s weight.
* The official denominator is ``alpha + torch.mm(k, r)``, a ``d x d`` outer product divided
  element-wise; OWM's formula (and its official code) uses the scalar ``alpha + r^T k``. We use
  the scalar.
* The official entropy is a softmax over the *batch* axis, so one batch-level scalar weights
  every sample and a prediction depends on the rest of the batch; ours is per sample.
* ``P`` is sized from the head (``latent_dim``), not fixed at 512 (or 768 in the Synergy copy).
* Each sub-step re-runs the forward pass of every encoder (the loop's sub-step contract), where
  the official code encodes a batch once; the gradient is the same (the losses only read
  ``z_{m_i}``, and encoder ``m_i`` is untouched by the earlier sub-steps), but batch-norm running
  statistics, if an encoder has any, are updated ``M`` times per batch.
* ``B`` is ``len(train) // batch_rows``, which is the loop's batch count (full batches only);
  the official code uses ``len(dataloader)``.
* Like the official code, the very first optimiser step of a run neither updates nor applies
  ``P`` (its continual-learning "first experience" guard is fed a step counter). The head bias
  is never projected (OWM protects the weight only).
* Only the dynamic (entropy) fusion is offered; the official ``--av_alpha`` fixed weights would
  need an option on the ``shared_head`` fusion.

``M >= 2`` modalities generalise directly: ``M`` sub-steps per batch in dataset order, one
shared ``P``, entropy weights softmaxed over all ``M``. Classification only (the fusion's weights
are prediction entropies). Latent dims must be equal (the fusion refuses otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mcr.config import param
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import Batch, Losses, Method, SetupContext
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MLAConfig:
    """Defaults: the official code's CREMA-D run (``--gs_flag --dynamic``)."""

    gs_flag: bool = param(
        True,
        "the OWM projector on the shared head's weight gradient",
        source="official main.py --gs_flag",
    )


def projector_alpha(batch_index: int, batches_per_epoch: int) -> float:
    """``alpha_t = 0.1 ** (1 + b / B)``: the RLS regulariser, 0.1 -> 0.01 over an epoch."""
    return 0.1 ** (1.0 + batch_index / max(1, batches_per_epoch))


def update_projector(projector: torch.Tensor, r: torch.Tensor, alpha: float) -> torch.Tensor:
    """One OWM/RLS step: ``P - k k^T / (alpha + r^T k)`` with ``k = P r``, Frobenius-normalised."""
    k = projector @ r
    updated = projector - torch.outer(k, k) / (alpha + r @ k)
    return updated / torch.linalg.matrix_norm(updated)


def project_gradient(grad: torch.Tensor, projector: torch.Tensor) -> torch.Tensor:
    """``grad W P^T`` for a ``(C, d)`` weight gradient."""
    return grad @ projector.t().to(grad.dtype)


@METHODS.register("mla")
class MLAMethod(Method):
    """One optimiser step per modality through a shared head, protected by an OWM projector."""

    Config = MLAConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: MLAConfig, info: DatasetInfo) -> None:
        super().__init__(config, info)
        self.order = self.modalities(info.modalities)
        self.substeps_per_batch = len(self.order)  # one step per modality
        self.active = 0  # sub-step index = position of the trained modality in ``order``
        self.projector: torch.Tensor | None = None
        self.projector_steps = 0  # sub-steps seen by the projector (step 0 is skipped)
        self.alpha = projector_alpha(0, 1)
        self._train_rows = 0
        self._batch = 0  # index b of the current batch within the epoch
        self._next_batch = 0

    def fusion(self) -> dict[str, Any]:
        return {"name": "shared_head"}

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        if model.spec.fusion.get("name") != "shared_head":
            raise ValueError("mla needs the shared_head fusion")
        if context.train is None:
            raise ValueError("mla needs the training split to count batches per epoch")
        self.order = model.modalities
        self._train_rows = len(context.train)
        dim = model.fusion.head.in_features
        self.projector = torch.eye(dim, device=context.device)

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        self._next_batch = 0

    def begin_substep(self, index: int) -> None:
        self.active = index
        if index == 0:
            self._batch = self._next_batch
            self._next_batch += 1

    @property
    def active_modality(self) -> str:
        return self.order[self.active]

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        m = self.active_modality
        task = self.task_loss(model.fusion.head_logits(out.latents[m]), batch.labels)
        # Every batch is full (the loop drops the remainder), so this is the loop's count.
        batches = max(1, self._train_rows // max(1, len(batch)))
        self.alpha = projector_alpha(self._batch, batches)
        terms = {f"task[{m}]": task.detach()}
        if self.config.gs_flag:
            terms["alpha"] = torch.tensor(self.alpha, device=task.device)
        return Losses(task, terms)

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        if not self.config.gs_flag or self.projector is None:
            return
        self.projector_steps += 1
        if self.projector_steps == 1:
            return  # official: the run's first step has nothing to protect yet
        r = out.latents[self.active_modality].detach().float().mean(0)
        self.projector = update_projector(self.projector, r.to(self.projector.device), self.alpha)
        weight = model.fusion.head.weight
        if weight.grad is not None:
            weight.grad.copy_(project_gradient(weight.grad, self.projector))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.projector is not None:
            state["projector"] = self.projector.detach().clone()
        state["projector_steps"] = self.projector_steps
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "projector" in state:
            device = self.projector.device if self.projector is not None else "cpu"
            self.projector = state["projector"].to(device)
        self.projector_steps = int(state["projector_steps"])
