"""The strategy interface: everything a training method may do, as narrow hooks.

The one training loop (``mcr.training.loop``) calls these hooks and never names a method; a
method never imports the loop. A method may:

* choose which modalities its model has (``modalities``), its fusion head (``fusion``) and
  whether it trains at all (``trains``);
* prepare the freshly built model once (``prepare``: load unimodal checkpoints, freeze, set heads);
* own extra trainable modules (``auxiliary``, e.g. MCR's L_CEB reconstruction head);
* act at each epoch start (``on_epoch_start``: stage switches, prototypes, weight snapshots);
* split a batch into several optimiser steps (``substeps_per_batch`` / ``begin_substep``: MLA);
* define the loss of a batch (``loss``), returning every term for logging;
* edit gradients after ``backward`` (``after_backward``, e.g. OGM-style modulation);
* scale each modality's learning rate (``lr_multiplier``: MSLR);
* react to validation at each epoch end (``on_epoch_end``);
* carry state across a checkpoint (``state_dict`` / ``load_state_dict``).

Everything a method keeps between steps must be in ``state_dict``: a resumed run has to give the
same numbers as an uninterrupted one.
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
        val: the validation split (e.g. for the ensemble's standardisation statistics, D&R's
            diagnosis, G-Blending's generalisation estimate).
        train: the training split (e.g. for PMR's class prototypes, D&R's diagnosis).
    """

    seed: int
    device: torch.device
    unimodal_models: dict[str, MultimodalModel] = field(default_factory=dict)
    val: Split | None = None
    train: Split | None = None


def task_loss(info: DatasetInfo, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, L1 for regression (as in the MCR code base)."""
    if info.task == "regression":
        return F.l1_loss(logits.float().reshape(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


def unimodal_losses(method: Method, batch: Batch, out: ModelOutput) -> dict[str, torch.Tensor]:
    """Task loss of each unimodal head ``h_m``, keyed ``uni[<modality>]`` (the auxiliary terms
    of multi-loss training, shared by every method that trains the heads)."""
    return {
        f"uni[{m}]": method.task_loss(logits, batch.labels)
        for m, logits in out.unimodal_logits.items()
    }


class Method:
    """Base strategy: plain joint training (fused task loss); subclasses override hooks.

    A method is declared once, in its module: its ``Config`` dataclass (every field a
    :func:`mcr.config.param` with description, source and range) and the class attributes below
    (what it refuses, what it consumes). ``workflow/tools/method_schema.py`` turns these into the
    params schema and the torch-free method catalog the Snakemake DAG reads.
    """

    Config: ClassVar[type] = type(None)
    #: Runs of this method start from (or combine) the ``unimodal_<m>`` runs of the same seed: a
    #: DAG edge in the pipeline. ``True``/``False``, or the name of a boolean ``Config`` field
    #: that switches it (MCR: ``"init_from_unimodal"``).
    unimodal_runs: ClassVar[bool | str] = False
    #: Does the loss train the unimodal heads ``h_m`` (so their accuracy means something)?
    trains_unimodal_heads: ClassVar[bool] = False
    #: Methods that only combine trained models (the ensemble) run zero epochs.
    trains: ClassVar[bool] = True
    #: Tasks the method supports; anything else is refused before training starts.
    supported_tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    #: Smallest number of modalities the method makes sense for.
    min_modalities: ClassVar[int] = 1
    #: Largest number of modalities the method is defined for (None: any).
    max_modalities: ClassVar[int | None] = None
    #: Optimiser steps per batch; ``begin_substep(i)`` is called before each (MLA: one per
    #: modality). The loop runs forward, ``loss``, backward and step once per sub-step.
    substeps_per_batch: int = 1

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
        if self.max_modalities is not None and n > self.max_modalities:
            raise ValueError(
                f"method is defined for at most {self.max_modalities} modalities, dataset has {n}"
            )

    @classmethod
    def uses_unimodal_runs(cls, config: Any) -> bool:
        """Whether runs with ``config`` depend on unimodal runs (see ``unimodal_runs``)."""
        if isinstance(cls.unimodal_runs, str):
            return bool(getattr(config, cls.unimodal_runs))
        return cls.unimodal_runs

    @property
    def needs_unimodal_models(self) -> bool:
        """Does this run read ``SetupContext.unimodal_models``?"""
        return self.uses_unimodal_runs(self.config)

    def modalities(self, available: tuple[str, ...]) -> tuple[str, ...]:
        return available

    def fusion(self) -> dict[str, Any]:
        """The fusion head the model is built with (``mcr.models.fusion``); stored in the spec."""
        return {"name": "linear"}

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        """Called once on the freshly built model, before the optimiser is created (and before
        a resumed run's state is restored)."""

    def auxiliary(self) -> nn.Module | None:
        """Extra trainable parameters owned by the method (optimised and checkpointed)."""
        return None

    def set_train_mode(self, model: MultimodalModel) -> None:
        """Put the model in training mode at the start of every epoch."""
        model.train()

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        """Called before the batches of ``epoch`` (0-based), also on the first epoch of a resume."""

    def begin_substep(self, index: int) -> None:
        """Called before sub-step ``index`` of every batch when ``substeps_per_batch > 1``."""

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return task_loss(self.info, logits, labels)

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        return Losses(task, {"task": task.detach()})

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        """Gradient modulation point: ``.grad`` of every parameter is populated here."""

    def lr_multiplier(self, group: str) -> float:
        """Learning-rate factor of a parameter group: a modality's ``player_parameters``, or
        ``"shared"`` for the rest. Read before every optimiser step."""
        return 1.0

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
