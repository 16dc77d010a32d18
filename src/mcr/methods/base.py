"""The strategy interface: everything a training method may do, as narrow hooks.

The one training loop (``mcr.training.loop``) calls these hooks and never names a method; a
method never imports the loop. A method may:

* choose which modalities its model has (``modalities``) and whether it trains at all (``trains``);
* prepare the freshly built model once (``prepare``: load unimodal checkpoints, freeze, set heads);
* own extra trainable modules (``auxiliary``, e.g. MCR's L_CEB reconstruction head);
* define the loss of a batch (``loss``), returning every term for logging;
* edit gradients after ``backward`` (``after_backward``, e.g. OGM-style modulation);
* react to validation at each epoch end (``on_epoch_end``);
* carry state across a checkpoint (``state_dict`` / ``load_state_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mcr.data.dataset import DatasetInfo, Split
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class Batch:
    """A mini-batch already on the training device."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Losses:
    """The scalar to minimise plus named terms (detached) for the history and tracking."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class SetupContext:
    """What ``prepare`` may use. It holds validation data, never test data.

    Attributes:
        seed: the run seed (methods derive their own random generators from it).
        device: where the model lives.
        unimodal_models: modality -> trained unimodal model, for methods that need them.
        val: the validation split (e.g. for the ensemble's standardisation statistics).
    """

    seed: int
    device: torch.device
    unimodal_models: dict[str, MultimodalModel] = field(default_factory=dict)
    val: Split | None = None


def task_loss(info: DatasetInfo, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, L1 for regression (as in the MCR code base)."""
    if info.task == "regression":
        return F.l1_loss(logits.float().reshape(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


class Method:
    """Base strategy: plain joint training (fused task loss); subclasses override hooks."""

    Config: ClassVar[type] = type(None)
    #: Does this method read ``SetupContext.unimodal_models``?
    needs_unimodal_models: ClassVar[bool] = False
    #: Does the loss train the unimodal heads ``h_m`` (so their accuracy means something)?
    trains_unimodal_heads: ClassVar[bool] = False
    #: Methods that only combine trained models (the ensemble) run zero epochs.
    trains: ClassVar[bool] = True
    #: Tasks the method supports; anything else is refused before training starts.
    supported_tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    #: Smallest number of modalities the method makes sense for.
    min_modalities: ClassVar[int] = 1

    def __init__(self, config: Any, info: DatasetInfo) -> None:
        self.config = config
        self.info = info

    def check_supported(self) -> None:
        """Raise ``ValueError`` when this method cannot run on ``self.info``."""
        if self.info.task not in self.supported_tasks:
            raise ValueError(f"method does not support {self.info.task} tasks")
        n = len(self.modalities(self.info.modalities))
        if n < self.min_modalities:
            raise ValueError(f"method needs >= {self.min_modalities} modalities, dataset has {n}")

    @classmethod
    def uses_unimodal_runs(cls, config: Any) -> bool:
        """Whether runs of this method depend on unimodal runs (a DAG edge in the pipeline)."""
        return bool(cls.needs_unimodal_models)

    def modalities(self, available: tuple[str, ...]) -> tuple[str, ...]:
        return available

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        """Called once on the freshly built model, before the optimiser is created."""

    def auxiliary(self) -> nn.Module | None:
        """Extra trainable parameters owned by the method (optimised and checkpointed)."""
        return None

    def set_train_mode(self, model: MultimodalModel) -> None:
        """Put the model in training mode at the start of every epoch."""
        model.train()

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return task_loss(self.info, logits, labels)

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        return Losses(task, {"task": task.detach()})

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        """Gradient modulation point: ``.grad`` of every parameter is populated here."""

    def on_epoch_end(
        self, epoch: int, model: MultimodalModel, val_metrics: Mapping[str, float]
    ) -> None:
        """Called after validation of ``epoch`` (0-based)."""

    def state_dict(self) -> dict[str, Any]:
        aux = self.auxiliary()
        return {"auxiliary": aux.state_dict()} if aux is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        aux = self.auxiliary()
        if aux is not None:
            aux.load_state_dict(state["auxiliary"])
