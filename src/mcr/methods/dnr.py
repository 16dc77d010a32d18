"""D&R, Diagnosing & Re-learning (Wei et al., ECCV 2024; docs/baselines.md §12).

Every ``reinit_epoch`` epochs (at most ``reinit_num`` times) each modality's learning state is
diagnosed from the separability of its representation: the encoder's latents of the training and
of the validation split are MinMax-scaled to ``[-1, 1]`` per feature, clustered by k-means with
``k = C`` classes, and scored by purity (``sum over clusters of the largest class count / N``).
A modality that separates its training data much better than unseen data is over-fitting, so
``gap_m = |purity_train - purity_val|`` sets a soft re-initialisation of its encoder towards its
initial weights:

``w_m = tanh(lambda * gap_m)``,  ``theta_m <- w_m * theta_m^init + (1 - w_m) * theta_m``.

The model is the multi-loss one (``L = task(fused) + unimodal_weight * sum_m task(h_m)``), as in
the MCR code base. Classification only (purity needs classes); M >= 2 modalities, each diagnosed
on its own (the formula is per modality already).

Deliberate deviations from the reference code (``code/ours.py``; MCR ``Bias_Infusion_DnR``):

* Each modality's validation purity is computed on its own validation latents. The MCR copy
  passes the visual validation features in the audio slot (a bug), so its audio gap compared
  audio-train with visual-val purity.
* Timing: the diagnosis runs at the *start* of epoch ``e`` with ``e % reinit_epoch == 0, e > 0``
  (after ``e`` finished epochs), as in the MCR copy; the official loop runs it one epoch later
  (after training epoch ``e``, 0-based). Doing it at an epoch start, not in ``on_epoch_end``,
  keeps ``best.pt`` equal to the model whose validation score it records.
* k-means is our own small torch implementation (no sklearn): k-means++ initialisation (plain,
  not sklearn's greedy variant) from a generator seeded by (run seed, epoch, modality),
  ``kmeans_iters`` Lloyd iterations, best of ``kmeans_restarts`` by inertia (default 1, sklearn
  >= 1.4's ``n_init='auto'`` for k-means++; the MCR copy uses 10). Cluster labels, hence purity,
  can differ slightly from sklearn's on the same features.
* Buffers: float buffers (e.g. BatchNorm running statistics) are blended like the parameters;
  the reference blends ``named_parameters`` only, leaving running statistics that no longer match
  the partly re-initialised weights. Integer buffers (``num_batches_tracked``) are left alone.
* The official script trains the fused loss only (``unimodal_weight: 0`` reproduces it); the
  MCR code base uses the multi-loss model (default).

The initial weights are not stored in the checkpoint: ``prepare`` runs on the freshly seeded
model of a resumed run too, so it records the same weights again (``state_dict`` keeps a
checksum per modality and a resume with different initial weights is refused).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mcr.config import param
from mcr.data.dataset import Split
from mcr.methods.base import Batch, Losses, Method, SetupContext, unimodal_losses
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

FEATURE_CHUNK = 1024  # rows per encoder pass when extracting latents for the diagnosis


@dataclass(frozen=True)
class DnRConfig:
    """Defaults: official ``script/ours.sh`` = MCR CREMA-D ResNet (lambda 3, every 20, 3 times)."""

    move_lambda: float = param(
        3.0,
        "lambda in the re-init weight w = tanh(lambda * purity gap)",
        source="official script/ours.sh, MCR (UCF: 5)",
        ge=0,
    )
    reinit_epoch: int = param(
        20,
        "diagnose every this many epochs",
        source="official script/ours.sh, MCR ResNet (Conformer: 4)",
        ge=1,
    )
    reinit_num: int = param(
        3,
        "at most this many re-initialisations",
        source="official script/ours.sh, MCR kmepoch 3",
        ge=0,
    )
    unimodal_weight: float = param(
        1.0,
        "weight of each h_m loss; 0 = fused loss only (the official script)",
        source="MCR multi-loss model (official: 0)",
        ge=0,
    )
    kmeans_iters: int = param(
        50,
        "Lloyd iterations per k-means run (stops early once converged)",
        source="ours",
        ge=1,
    )
    kmeans_restarts: int = param(
        1,
        "k-means++ restarts, the lowest inertia kept",
        source="sklearn >= 1.4 n_init='auto' for k-means++ (MCR: 10)",
        ge=1,
    )


# -- diagnosis: pure functions ------------------------------------------------------------------


def minmax_scale(x: torch.Tensor) -> torch.Tensor:
    """Each feature (column) mapped to ``[-1, 1]``; constant features go to -1 (as sklearn)."""
    low, high = x.min(0).values, x.max(0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return (x - low) / span * 2 - 1


def kmeans(
    x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 50, restarts: int = 1
) -> torch.Tensor:
    """Cluster index of every row: k-means++ seeding then Lloyd iterations (float64, CPU).

    Deterministic given ``generator``; of ``restarts`` runs the one with the lowest inertia is
    kept. An empty cluster keeps its previous centre.
    """
    x = x.detach().to("cpu", torch.float64)
    k = min(k, x.shape[0])
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        centres = _kmeans_plus_plus(x, k, generator)
        for _ in range(iters):
            assign = torch.cdist(x, centres).argmin(1)
            counts = torch.bincount(assign, minlength=k)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            filled = counts > 0
            updated = centres.clone()
            updated[filled] = sums[filled] / counts[filled].unsqueeze(1).to(x.dtype)
            if torch.equal(updated, centres):
                break
            centres = updated
        distances = torch.cdist(x, centres)
        assign = distances.argmin(1)
        inertia = float(distances.min(1).values.pow(2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    assert best is not None
    return best


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Centres drawn one by one with probability proportional to the squared distance."""
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    centres = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        if float(d2.sum()) > 0:
            index = int(torch.multinomial(d2, 1, generator=generator))
        else:  # every point coincides with a centre already
            index = int(torch.randint(x.shape[0], (1,), generator=generator))
        centres.append(x[index])
        d2 = torch.minimum(d2, (x - x[index]).pow(2).sum(1))
    return torch.stack(centres)


def purity(labels: torch.Tensor, clusters: torch.Tensor) -> float:
    """``sum over clusters of the most frequent label's count / N``."""
    labels, clusters = labels.long().cpu(), clusters.long().cpu()
    classes = int(labels.max()) + 1
    joint = torch.bincount(
        clusters * classes + labels, minlength=int(clusters.max() + 1) * classes
    )
    return float(joint.view(-1, classes).max(1).values.sum()) / labels.numel()


def representation_purity(
    features: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    generator: torch.Generator,
    cfg: DnRConfig,
) -> float:
    """Purity of a k-means clustering of MinMax-scaled features (the diagnosis of one split)."""
    scaled = minmax_scale(features.double())
    return purity(labels, kmeans(scaled, k, generator, cfg.kmeans_iters, cfg.kmeans_restarts))


@torch.no_grad()
def reinit(encoder: nn.Module, init_state: Mapping[str, torch.Tensor], w: float) -> None:
    """``theta <- w * theta_init + (1 - w) * theta`` for every float parameter and buffer."""
    for name, value in encoder.state_dict().items():
        if value.is_floating_point():
            value.copy_(w * init_state[name] + (1 - w) * value)


@torch.no_grad()
def encoder_latents(model: MultimodalModel, modality: str, split: Split) -> torch.Tensor:
    """``z_m`` of every row of ``split`` in eval mode, in chunks, on the CPU."""
    device = next(model.parameters()).device
    encoder = model.encoders[modality]
    was_training = encoder.training
    encoder.eval()
    try:
        x = split.inputs[modality]
        return torch.cat([
            encoder(x[i : i + FEATURE_CHUNK].to(device)).float().cpu()
            for i in range(0, x.shape[0], FEATURE_CHUNK)
        ])  # fmt: skip
    finally:
        encoder.train(was_training)


# -- the method ---------------------------------------------------------------------------------


@METHODS.register("dnr")
class DnRMethod(Method):
    """Multi-loss training with periodic purity-gap diagnosis and soft re-initialisation."""

    Config = DnRConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: DnRConfig, info) -> None:
        super().__init__(config, info)
        self.seed = 0
        self.train_split: Split | None = None
        self.val_split: Split | None = None
        self.init_states: dict[str, dict[str, torch.Tensor]] = {}
        self.reinits = 0
        self.last: dict[str, dict[str, float]] = {}  # modality -> weight, gap, purities

    @property
    def trains_unimodal_heads(self) -> bool:  # type: ignore[override]
        return self.config.unimodal_weight > 0

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        if context.train is None or context.val is None:
            raise ValueError("D&R diagnoses on the train and validation splits; both are needed")
        self.seed, self.train_split, self.val_split = context.seed, context.train, context.val
        self.init_states = {
            m: {k: v.detach().clone() for k, v in model.encoders[m].state_dict().items()}
            for m in model.modalities
        }

    def is_diagnosis_epoch(self, epoch: int) -> bool:
        """Start of epoch ``e``: ``e % reinit_epoch == 0``, ``e > 0``, re-inits left."""
        cfg = self.config
        return epoch > 0 and epoch % cfg.reinit_epoch == 0 and self.reinits < cfg.reinit_num

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        if not self.is_diagnosis_epoch(epoch):
            return
        self.last = self.diagnose(epoch, model)
        for m, result in self.last.items():
            reinit(model.encoders[m], self.init_states[m], result["weight"])
        self.reinits += 1

    def diagnose(self, epoch: int, model: MultimodalModel) -> dict[str, dict[str, float]]:
        """Purity of train and val latents per modality, their gap and the re-init weight."""
        assert self.train_split is not None and self.val_split is not None, "prepare first"
        results = {}
        for index, m in enumerate(model.modalities):
            generator = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + epoch) * 101 + index
            )
            purities = []
            for split in (self.train_split, self.val_split):
                latents = encoder_latents(model, m, split)
                k = self.info.num_classes
                purities.append(
                    representation_purity(latents, split.labels, k, generator, self.config)
                )
            gap = abs(purities[0] - purities[1])
            results[m] = {
                "weight": math.tanh(self.config.move_lambda * gap),
                "gap": gap,
                "purity_train": purities[0],
                "purity_val": purities[1],
            }
        return results

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        terms = {"task": task.detach(), "reinits": torch.tensor(float(self.reinits))}
        total = task
        if self.config.unimodal_weight > 0:
            uni = unimodal_losses(self, batch, out)
            total = total + self.config.unimodal_weight * sum(uni.values())
            terms.update({k: v.detach() for k, v in uni.items()})
        for m, result in self.last.items():  # the latest diagnosis, constant over an epoch
            terms[f"reinit_weight[{m}]"] = torch.tensor(result["weight"])
            terms[f"purity_gap[{m}]"] = torch.tensor(result["gap"])
        return Losses(total, terms)

    def _checksums(self) -> dict[str, float]:
        """``sum |theta_init|`` per encoder: cheap evidence that ``prepare`` saw the same init."""
        return {
            m: float(sum(v.double().abs().sum() for v in state.values() if v.is_floating_point()))
            for m, state in self.init_states.items()
        }

    def state_dict(self) -> dict[str, Any]:
        return {"reinits": self.reinits, "last": self.last, "init_checksums": self._checksums()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        stored, now = state["init_checksums"], self._checksums()
        if stored.keys() != now.keys() or not all(
            math.isclose(stored[m], now[m], rel_tol=1e-9) for m in now
        ):
            raise ValueError(
                "D&R: the freshly built model's initial encoder weights differ from the "
                "checkpointed run's; cannot resume its re-initialisations"
            )
        self.reinits = int(state["reinits"])
        self.last = {m: dict(r) for m, r in state["last"].items()}
