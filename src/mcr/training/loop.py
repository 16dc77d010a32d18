"""The one training loop. Every method plugs in through the hooks of ``mcr.methods.base.Method``.

Read top to bottom: optimiser (one parameter group per modality) -> (resume) -> per epoch:
``method.on_epoch_start``, batches (:mod:`mcr.training.batches`: tensors already on the device,
or a stream from disk for datasets beyond the memory budget), learning rates
(schedule x ``method.lr_multiplier``), forward, ``method.loss``, backward,
``method.after_backward``, step (repeated per ``method.substeps_per_batch``) -> validation ->
``method.on_epoch_end`` -> best-so-far on *validation* -> checkpoint -> early stop.
The loop receives the train and validation splits only, so it cannot select on test data.

Three hooks serve one method each and stay, because each is a few lines here and the general
alternative is larger: ``trains = False`` (the ensemble runs zero epochs; its ``prepare`` builds
the equivalent linear late-fusion model, so checkpoints, evaluation, error analysis and tracking
need no combiner of their own), ``set_train_mode`` (uni_pre_frozen keeps its encoders in eval
mode) and ``substeps_per_batch`` (MLA's alternating steps need the loop's optimiser).
Run state (``last.pt``, ``best.pt``, ``history.csv``) is in :mod:`mcr.training.state`.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mcr.config import to_mapping
from mcr.data.dataset import Split
from mcr.methods.base import Method
from mcr.models.multimodal import MultimodalModel
from mcr.runtime import request_deterministic_kernels
from mcr.training import checkpoint
from mcr.training.batches import training_batches
from mcr.training.config import TrainConfig
from mcr.training.inference import predict, validation_metrics
from mcr.training.state import (
    Progress,
    SettingsChangedError,
    restore,
    restore_outputs,
    save_checkpoints,
)

__all__ = ["EpochCallback", "FitResult", "TrainConfig", "fit"]

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]]
    stopped_early: bool
    seconds: float = 0.0  # epochs' training + validation time, summed over resumes
    started_at: float = 0.0  # Unix time the run's first epoch began (first process)
    finished_at: float = 0.0  # Unix time it finished


EpochCallback = Callable[[dict[str, float]], None]


def selection_score(config: TrainConfig, task: str, val: Mapping[str, float]) -> float:
    """Higher is better: validation accuracy, or minus the validation loss."""
    key = config.select_on
    if key == "auto":
        key = "loss" if task == "regression" else "accuracy"
    return val["accuracy"] if key == "accuracy" else -val["loss"]


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Schedule factor of the learning rate at optimiser step ``step`` (0-based)."""
    if config.scheduler == "none" or step < config.warmup_steps:
        return 1.0
    if config.scheduler == "cosine_restarts":  # CosineAnnealingWarmRestarts.step(global step)
        t, period = step, config.restart_period
        while t >= period:
            t, period = t - period, period * config.restart_mult
        return 0.5 * (1 + math.cos(math.pi * t / period))
    span = max(1, total_steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))


def parameter_groups(model: MultimodalModel, method: Method) -> list[dict[str, Any]]:
    """One optimiser group per modality (its ``player_parameters``) plus ``"shared"``.

    Adam is element-wise, so grouping changes nothing unless a method scales a group's
    learning rate (``Method.lr_multiplier``, MSLR). Frozen parameters are left out.
    """
    seen: set[int] = set()
    groups = []
    for name in (*model.modalities, "shared"):
        source = model.parameters() if name == "shared" else model.player_parameters(name)
        params = [p for p in source if p.requires_grad and id(p) not in seen]
        if name == "shared" and (aux := method.auxiliary()) is not None:
            params += list(aux.parameters())
        seen.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "name": name})
    return groups


def set_learning_rates(
    optimizer: torch.optim.Optimizer, method: Method, config: TrainConfig, step: int, total: int
) -> float:
    """Apply schedule and method multipliers to every group; returns the base rate."""
    base = config.lr * lr_factor(config, step, total)
    for group in optimizer.param_groups:
        group["lr"] = base * method.lr_multiplier(group["name"])
    return base


def fit(
    model: MultimodalModel,
    method: Method,
    train: Split,
    val: Split,
    config: TrainConfig,
    seed: int,
    out_dir: str | Path,
    *,
    run_meta: Mapping[str, Any] | None = None,
    resume: bool = True,
    restart_if_changed: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    on_start: Callable[[], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``method``; select the best epoch on ``val``; checkpoint every
    ``config.checkpoint_every_s`` seconds and at the end.

    ``method.prepare`` must already have run (it may freeze parameters, which decides what the
    optimiser sees). With ``resume`` an existing ``last.pt`` written with the same ``run_meta``
    continues where it stopped and gives the same result as an uninterrupted run; one written
    with other settings is an error, or is overwritten with ``restart_if_changed`` (the pipeline:
    a job reruns because its params changed).

    ``on_start`` is called once before the first epoch this call trains (not for a finished
    run), ``callbacks`` after every epoch with its history row (live tracking uses both).

    Returns:
        The best epoch, its validation metrics and the per-epoch history.
    """
    if train.name != "train" or val.name != "val":
        raise ValueError(f"fit takes the train and val splits, got {train.name!r}/{val.name!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    # What a resumed run must share with the run that wrote last.pt (display-only keys aside).
    cosmetic = ("progress", "eval_batch_size", "checkpoint_every_s")
    train_meta = {k: v for k, v in to_mapping(config).items() if k not in cosmetic}
    meta = {"train_config": train_meta, "seed": seed, **(run_meta or {})}
    groups = parameter_groups(model, method)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.Adam(
        groups, lr=config.lr, betas=(0.9, 0.999), eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    # The loop's own forward pass may be compiled; it shares the model's parameters, so
    # checkpoints and the methods (which call encoders themselves, eagerly) see one model.
    forward = model
    if config.compile:
        importlib.import_module("torch._inductor.config")  # then the flag reaches it too
        request_deterministic_kernels()
        forward = torch.compile(model)
    batches = training_batches(train, model.modalities, config, seed, device)
    steps_per_epoch = batches.steps  # drop_last: no 1-row batches
    total_steps = steps_per_epoch * config.epochs
    substeps = max(1, int(method.substeps_per_batch))
    progress = Progress()
    last_path = out_dir / checkpoint.LAST
    if resume and last_path.is_file():
        try:
            progress = restore(last_path, meta, model, method, optimizer)
            log.info("resuming %s at epoch %d", out_dir, progress.next_epoch)
        except SettingsChangedError:
            if not restart_if_changed:
                raise
            log.warning("%s holds a run with other settings: starting afresh", last_path)
        except checkpoint.CheckpointError as exc:
            if not restart_if_changed:
                raise
            log.warning("%s; starting afresh", exc)  # the pipeline: a rerun must not loop on it
    epochs = config.epochs if method.trains else 0
    autocast = torch.autocast(
        "cuda", torch.bfloat16, enabled=device.type == "cuda" and config.bf16
    )
    bar = tqdm(
        total=epochs, initial=min(progress.next_epoch, epochs), desc=str(out_dir.name),
        disable=not config.progress, unit="epoch", leave=False,
    )  # fmt: skip
    if not progress.finished and not progress.started_at:
        progress.started_at = time.time()  # kept in last.pt: a resumed run keeps its start
    if epochs == 0 and not progress.finished:  # nothing to train: the prepared model is final
        progress.history.append({"epoch": -1.0})
        progress = _evaluate_epoch(-1, model, method, val, config, progress, meta)
        progress.finished, progress.finished_at = True, time.time()
    saved_at, best_written = time.monotonic(), None  # best.pt: rewritten at the first save
    if on_start is not None and not progress.finished and progress.next_epoch < epochs:
        on_start()
    while not progress.finished and progress.next_epoch < epochs:
        epoch = progress.next_epoch
        tic = time.perf_counter()
        method.on_epoch_start(epoch, model)
        method.set_train_mode(model)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for step, batch in enumerate(batches.epoch(epoch)):
            base_lr = set_learning_rates(
                optimizer, method, config, epoch * steps_per_epoch + step, total_steps
            )
            for sub in range(substeps):
                if substeps > 1:
                    method.begin_substep(sub)
                with autocast:
                    out = forward(batch.inputs)
                    losses = method.loss(model, batch, out)
                optimizer.zero_grad(set_to_none=True)
                losses.total.backward()
                method.after_backward(model, batch, out)
                if config.grad_clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
                optimizer.step()
                for key, value in {"loss": losses.total.detach(), **losses.terms}.items():
                    sums[key] = sums.get(key, 0.0) + value.float()  # no host sync per step
                    counts[key] = counts.get(key, 0) + 1
        record = {"epoch": float(epoch)}
        record.update({f"train_{k}": float(v) / counts[k] for k, v in sums.items()})
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(
                f"{out_dir}: training loss is {record['train_loss']} at epoch {epoch}; "
                "lower train.lr or check the inputs for extreme values"
            )
        record["lr"] = base_lr
        record["train_seconds"] = time.perf_counter() - tic
        progress.history.append(record)
        progress = _evaluate_epoch(epoch, model, method, val, config, progress, meta)
        progress.next_epoch = epoch + 1
        progress.seconds += time.perf_counter() - tic
        if progress.bad_epochs >= config.patience > 0:
            progress.finished = progress.stopped_early = True
        progress.finished |= progress.next_epoch >= epochs
        if progress.finished:
            progress.finished_at = time.time()
        if progress.finished or time.monotonic() - saved_at >= config.checkpoint_every_s:
            best_written = save_checkpoints(
                out_dir, meta, model, method, optimizer, progress, best_written
            )
            saved_at = time.monotonic()
        bar.update(1)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_score']:.3f}")
        log.info(
            "%s epoch %d: train loss %.4f, val score %.4f (best %.4f @ %d)", out_dir.name, epoch,
            record["train_loss"], record["val_score"], progress.best_score, progress.best_epoch,
        )  # fmt: skip
        for callback in callbacks:
            callback(record)
    bar.close()
    if epochs == 0:
        save_checkpoints(out_dir, meta, model, method, optimizer, progress, best_written)
    restore_outputs(out_dir, progress)
    return FitResult(
        best_epoch=progress.best_epoch,
        best_val=progress.best_val,
        history=progress.history,
        stopped_early=progress.stopped_early,
        seconds=progress.seconds,
        started_at=progress.started_at,
        finished_at=progress.finished_at,
    )


def _evaluate_epoch(
    epoch: int,
    model: MultimodalModel,
    method: Method,
    val: Split,
    config: TrainConfig,
    progress: Progress,
    meta: Mapping[str, Any],
) -> Progress:
    """Validate, let the method react, and snapshot the best state on a validation improvement
    (written to ``best.pt`` with the next checkpoint)."""
    val_metrics = validation_metrics(
        method.info, predict(model, val.inputs, config.eval_batch_size), val.labels
    )
    method.on_epoch_end(epoch, model, val_metrics)
    score = selection_score(config, method.info.task, val_metrics)
    if progress.history and progress.history[-1]["epoch"] == epoch:
        progress.history[-1].update({f"val_{k}": v for k, v in val_metrics.items()})
        progress.history[-1]["val_score"] = score
    if score > progress.best_score:
        progress.best_score, progress.best_epoch, progress.bad_epochs = score, epoch, 0
        progress.best_val = dict(val_metrics)
        progress.best_checkpoint = copy.deepcopy(  # a snapshot, not views of live weights
            {
                **meta,
                "model_spec": model.spec.to_dict(),
                "model_state": model.state_dict(),
                "method_state": method.state_dict(),
                "epoch": epoch,
                "val_metrics": val_metrics,
            }
        )
    else:
        progress.bad_epochs += 1
    return progress
