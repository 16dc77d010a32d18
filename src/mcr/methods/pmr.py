"""PMR, prototypical modal rebalance (Fan et al., CVPR 2023; docs/baselines.md §13).

Class prototypes give each modality a non-parametric classifier that the fusion head cannot
contaminate; the modality that this classifier finds weaker gets an extra prototypical
cross-entropy, which pulls its encoder forward.

* ``on_epoch_start``: ``c_k^m`` = mean of ``z_m`` over the training rows of class ``k`` (eval
  mode, no grad, in chunks), then ``c <- (1 - mu) c_new + mu c_old`` (``momentum``; 0 in the
  released ``bash.sh``, so the prototypes are simply recomputed).
* per step: ``p_m = -||z_m - c_k^m||_2`` (plain Euclidean distance, not squared);
  ``s_m = sum_i softmax(p_m^i)_{y_i}``; ``w_m = alpha`` when ``s_m`` is below the mean of the
  other modalities' scores, else 0 (M=2: the official ``beta``/``lambda`` rule on
  ``rho = s_a / s_v``; at ``rho == 1`` nobody gets a weight, as in the code);
  ``L = task(fused) + sum_m w_m CE(p_m, y)`` inside the epoch window
  ``[modulation_starts, modulation_ends]``, ``task(fused)`` alone outside it.
* Paper-only entropy regulariser (off by default, as in the released script): for the first
  ``entropy_epochs`` epochs, ``+ entropy_weight * (-H(softmax(p_m)))`` for every *dominant*
  modality (``s_m`` above the mean of the others: the stronger one for M=2), which raises the
  entropy of its prototype predictions, slowing it down.

Deviations from the released ``main_Prototype_grad.py``, on purpose:

* **Prototypes from the whole training split.** The script computes them from the AVE *val* set,
  the CG-MNIST *test* set and, for CREMA-D, the first 10 % of the shuffled training batches (and
  the per-dataset branches disagree with the PMR paper). Prototypes are part of training, so
  they must not see validation or test rows, and all training rows give a stable mean.
* **EMA from the second computation on.** The script skips the EMA once more (after epoch 0);
  with the default ``momentum 0.0`` both are identical.
* **A class with no training row** keeps its previous prototype (zeros at the first
  computation) instead of the script's 0/0 = NaN.
* **Distances** are ``sqrt(max(d², 1e-12))``, so a latent sitting exactly on a prototype gives a
  finite gradient (the script's ``sqrt`` would give NaN there).
* **M modalities:** the weaker/dominant test compares with the mean of the other modalities;
  classification only (prototypes are class means).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mcr.config import param
from mcr.data.dataset import Split
from mcr.methods.base import Batch, Losses, Method, SetupContext
from mcr.methods.modulation import batch_scores, eval_mode, mean_of_others
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

#: Rows per encoder pass when computing prototypes (memory only; the result does not depend on it).
PROTOTYPE_CHUNK = 1024


@dataclass(frozen=True)
class PMRConfig:
    """Defaults: official ``bash.sh``, CREMA-D with concat fusion."""

    alpha: float = param(
        2.0,
        "prototypical CE weight of the weaker modality",
        source="official bash.sh CREMA-D concat/sum (3.0 gated/film, 1.0-2.0 AVE; BalanceMM 0.6)",
        ge=0,
    )
    momentum: float = param(
        0.0,
        "prototype EMA mu (momentum_coef); 0 = prototypes recomputed each epoch",
        source="official bash.sh (argparse default 0.2; BalanceMM 0.5)",
        ge=0,
        lt=1,
    )
    modulation_starts: int = param(
        0, "first epoch with the prototypical loss", source="official bash.sh", ge=0
    )
    modulation_ends: int = param(
        70, "last epoch with the prototypical loss", source="official bash.sh", ge=0
    )
    entropy_weight: float = param(
        0.0,
        "mu of the paper's entropy regulariser on the dominant modality; 0 = off",
        source="released script: off (a third-party reimplementation uses 0.01)",
        ge=0,
    )
    entropy_epochs: int = param(
        10,
        "E_r, epochs the entropy regulariser runs",
        source="third-party reimplementation (the released code gives no number)",
        ge=0,
    )

    def __post_init__(self) -> None:
        if self.modulation_ends < self.modulation_starts:
            raise ValueError(
                f"modulation_ends={self.modulation_ends}: expected >= modulation_starts"
            )


def class_sums(
    latents: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sum of the latent rows ``(C, d)`` and row counts ``(C,)``."""
    latents = latents.float()
    sums = torch.zeros(num_classes, latents.shape[1], device=latents.device)
    sums.index_add_(0, labels, latents)
    counts = torch.bincount(labels, minlength=num_classes).to(sums)
    return sums, counts


def prototype_logits(latents: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``p[i, k] = -||z_i - c_k||_2`` ``(B, C)``; the squared distance is floored at 1e-12."""
    diff = latents.float().unsqueeze(1) - prototypes.unsqueeze(0)
    return -diff.pow(2).sum(-1).clamp_min(1e-12).sqrt()


def pmr_weights(scores: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``alpha`` for a modality scoring below the mean of the others, else 0 (no host sync)."""
    return {m: alpha * (s < mean_of_others(scores, m)).float() for m, s in scores.items()}


def dominant(scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """1.0 for a modality scoring above the mean of the others, else 0.0."""
    return {m: (s > mean_of_others(scores, m)).float() for m, s in scores.items()}


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of ``softmax(logits)`` over the batch."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


@METHODS.register("pmr")
class PMRMethod(Method):
    """Fused task loss plus the prototypical CE of the modality the prototypes find weaker."""

    Config = PMRConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: PMRConfig, info) -> None:
        super().__init__(config, info)
        self.epoch = 0
        self.train_split: Split | None = None
        self.prototypes: dict[str, torch.Tensor] | None = None

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        if context.train is None:
            raise ValueError("PMR builds its class prototypes from the training split")
        self.train_split = context.train

    def modulating(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def regularising_entropy(self, epoch: int) -> bool:
        return self.config.entropy_weight > 0 and epoch < self.config.entropy_epochs

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        self.epoch = epoch
        if self.modulating(epoch) or self.regularising_entropy(epoch):
            self.update_prototypes(model)

    @torch.no_grad()
    def compute_class_means(
        self, model: MultimodalModel, chunk: int = PROTOTYPE_CHUNK
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Class means of every modality's latents over the training split, and class counts."""
        if self.train_split is None:
            raise RuntimeError("PMR.prepare must run before the prototypes are computed")
        split = self.train_split
        device = next(model.parameters()).device
        num_classes = self.info.num_classes
        sums: dict[str, torch.Tensor] = {}
        counts = torch.zeros(num_classes, device=device)
        with eval_mode(model):
            for start in range(0, len(split), chunk):
                labels = split.labels[start : start + chunk].to(device)
                for m in model.modalities:
                    z = model.encoders[m](split.inputs[m][start : start + chunk].to(device))
                    s, c = class_sums(z, labels, num_classes)
                    sums[m] = sums[m] + s if m in sums else s
                counts += c
        means = {m: s / counts.clamp_min(1).unsqueeze(1) for m, s in sums.items()}
        return means, counts

    def update_prototypes(self, model: MultimodalModel) -> None:
        """Recompute the class means; EMA with the previous prototypes (``momentum``)."""
        means, counts = self.compute_class_means(model)
        empty = (counts == 0).unsqueeze(1)
        mu = self.config.momentum
        prototypes = {}
        for m, new in means.items():
            if self.prototypes is None:
                prototypes[m] = new
                continue
            old = self.prototypes[m].to(new.device)
            new = torch.where(empty, old, new)  # a class without rows keeps its prototype
            prototypes[m] = (1 - mu) * new + mu * old
        self.prototypes = prototypes

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        total, terms = task, {"task": task.detach()}
        modulate = self.modulating(self.epoch)
        regularise = self.regularising_entropy(self.epoch)
        if not (modulate or regularise):
            return Losses(total, terms)
        if self.prototypes is None:
            raise RuntimeError("PMR: on_epoch_start must compute the prototypes before a step")
        logits = {
            m: prototype_logits(out.latents[m], self.prototypes[m].to(out.latents[m].device))
            for m in out.modalities
        }
        scores = batch_scores(self.info, logits, batch.labels)
        if modulate:
            weights = pmr_weights(scores, self.config.alpha)
            for m, p in logits.items():
                ce = F.cross_entropy(p, batch.labels)
                total = total + weights[m] * ce
                terms[f"proto_ce[{m}]"] = ce.detach()
                terms[f"proto_weight[{m}]"] = weights[m]
        if regularise:
            flags = dominant(scores)
            penalty = sum(flags[m] * -entropy(p) for m, p in logits.items())
            total = total + self.config.entropy_weight * penalty
            terms["proto_neg_entropy"] = penalty.detach()
        return Losses(total, terms)

    def state_dict(self) -> dict[str, Any]:
        prototypes = (
            None
            if self.prototypes is None
            else {m: c.detach().cpu().clone() for m, c in self.prototypes.items()}
        )
        return {**super().state_dict(), "prototypes": prototypes}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.prototypes = state["prototypes"]
