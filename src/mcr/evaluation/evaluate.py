"""Evaluate a finished run on validation and test: one JSON per run.

The test split is used here and only here, with the weights the loop selected on validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mcr import metrics
from mcr.data.dataset import MultimodalDataset, Split
from mcr.evaluation.modality import accuracy_by_annotation, error_analysis, permuted_logits
from mcr.io import atomic_write
from mcr.methods import create_method
from mcr.models.multimodal import MultimodalModel
from mcr.training import checkpoint, predict
from mcr.training.checkpoint import load_model
from mcr.training.state import unfinished_reason

PERMUTATION_SEED = 0  # fixed, so "accuracy with modality m permuted" is reproducible


@torch.no_grad()
def evaluate_split(
    model: MultimodalModel,
    split: Split,
    *,
    unimodal_heads_trained: bool,
    reference_models: Mapping[str, MultimodalModel] | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Every metric of one split (see the module docstring of ``mcr.evaluation``)."""
    info = model.spec.info
    out = predict(model, split.inputs, batch_size)
    labels = split.labels.to(out.logits.device)
    permutation = torch.randperm(
        len(split), generator=torch.Generator().manual_seed(PERMUTATION_SEED)
    )
    result: dict[str, Any] = {"n": len(split)}
    per_modality: dict[str, dict[str, float | None]] = {}
    if info.task == "regression":
        result["mae"] = metrics.mean_absolute_error(out.logits, labels)
        result["pearson_r"] = metrics.pearson_r(out.logits, labels)
        result["binary_accuracy"] = metrics.binary_accuracy_nonzero(out.logits, labels)
        for m in model.modalities:
            uni = out.unimodal_logits.get(m)
            per_modality[m] = {
                "unimodal_head_mae": metrics.mean_absolute_error(uni, labels)
                if uni is not None and unimodal_heads_trained
                else None,
                "in_model_mae": metrics.mean_absolute_error(out.in_model_logits(m), labels),
                "permuted_mae": metrics.mean_absolute_error(
                    permuted_logits(out, m, permutation, model.fusion.combine), labels
                ),
            }
        result["modalities"] = per_modality
        return result

    predictions = out.logits.argmax(-1)
    fused_correct = predictions == labels
    result["accuracy"] = metrics.accuracy(out.logits, labels)
    result["macro_f1"] = metrics.macro_f1(predictions, labels, info.num_classes)
    for m in model.modalities:
        uni = out.unimodal_logits.get(m)
        permuted = permuted_logits(out, m, permutation, model.fusion.combine)
        per_modality[m] = {
            "unimodal_head_accuracy": metrics.accuracy(uni, labels)
            if uni is not None and unimodal_heads_trained
            else None,
            "in_model_accuracy": metrics.accuracy(out.in_model_logits(m), labels),
            "permuted_accuracy": metrics.accuracy(permuted, labels),
        }
    result["modalities"] = per_modality
    reference, source = _unimodal_correctness(out, split, labels, reference_models, batch_size)
    if len(model.modalities) > 1 and (reference_models or unimodal_heads_trained):
        result["error_analysis"] = {
            "reference": source,
            "groups": error_analysis(fused_correct, reference),
        }
    if split.annotations:
        result["annotations"] = accuracy_by_annotation(fused_correct, split.annotations)
    return result


def _unimodal_correctness(out, split, labels, reference_models, batch_size):
    """Correctness of the unimodal predictors: separate unimodal runs if given, else the heads."""
    if reference_models:
        correct = {}
        for m, ref in reference_models.items():
            ref_out = predict(ref, {m: split.inputs[m]}, batch_size)
            correct[m] = ref_out.logits.argmax(-1).to(labels.device) == labels
        return correct, "unimodal_runs"
    return {m: u.argmax(-1) == labels for m, u in out.unimodal_logits.items()}, "unimodal_heads"


def evaluate_run(
    run_dir: str | Path,
    dataset: MultimodalDataset,
    *,
    reference_runs: Mapping[str, str | Path] | None = None,
    out_path: str | Path | None = None,
    batch_size: int = 1024,
    allow_unfinished: bool = False,
) -> dict[str, Any]:
    """Evaluate ``run_dir/best.pt`` on val and test; write the JSON to ``out_path`` if given.

    ``batch_size`` rows go through the model at a time (memory only: results do not depend on
    it beyond float rounding). A run whose ``last.pt`` says it has not finished is refused: its
    best epoch so far is not the run's result. ``allow_unfinished`` evaluates it anyway, and the
    result says ``"unfinished": true``.

    Raises:
        ValueError: an unfinished run (without ``allow_unfinished``), or other modalities.
    """
    run_dir = Path(run_dir)
    unfinished = unfinished_reason(run_dir)
    if unfinished and not allow_unfinished:
        raise ValueError(
            f"{run_dir}: the run has not finished ({unfinished}); finish it (rerun the same "
            "mcr train command, or its pipeline job) or evaluate it as it is with "
            "--allow-unfinished"
        )
    state = checkpoint.load(run_dir / checkpoint.BEST)
    model = checkpoint.model_from_state(state)
    if model.spec.info.modalities != dataset.info.modalities:
        raise ValueError(
            f"{run_dir}: trained on modalities {model.spec.info.modalities}, but the dataset has "
            f"{dataset.info.modalities}"
        )
    method = create_method(  # a variant's run is built as the method it varies
        state.get("variant_of") or state["method"], state["method_config"], model.spec.info
    )
    references = {m: load_model(p) for m, p in (reference_runs or {}).items()}
    result = {
        "run": str(run_dir),
        "dataset": dataset.info.name,
        "method": state["method"],
        "seed": state["seed"],
        "best_epoch": state["epoch"],
    }
    if unfinished:
        result["unfinished"] = True
    for name in ("val", "test"):
        result[name] = evaluate_split(
            model,
            dataset.split(name),
            unimodal_heads_trained=method.trains_unimodal_heads,
            reference_models=references,
            batch_size=batch_size,
        )
    if out_path is not None:
        with atomic_write(out_path) as fh:
            fh.write(json.dumps(result, indent=2) + "\n")
    return result
