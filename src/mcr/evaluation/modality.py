"""Per-modality analysis of a trained model, and the paper's error analysis (Fig. 4).

Pure functions of predictions: they say how much the fused prediction relies on each modality
(in-model accuracy from one contribution alone, accuracy with one latent permuted) and where the
fused model is right or wrong relative to unimodal predictors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from mcr.models.outputs import ModelOutput


def permuted_logits(
    out: ModelOutput,
    modality: str,
    permutation: torch.Tensor,
    combine: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """Fused logits with ``modality``'s contribution taken from other samples (``permutation``).

    Breaks the modality's link to the label while keeping its marginal, so the drop in
    accuracy measures how much the fused prediction uses that modality.
    """
    parts = dict(out.contributions)
    parts[modality] = parts[modality][permutation.to(parts[modality].device)]
    return combine(parts)


def correctness_pattern(correct: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Per sample, which predictors are right: ``"m1+m2"``, ``"m1"``, ``"m2"`` or ``"none"``."""
    names = list(correct)
    flags = np.stack([correct[m].cpu().numpy().astype(bool) for m in names], axis=1)
    return np.array(
        ["+".join(n for n, f in zip(names, row, strict=True) if f) or "none" for row in flags]
    )


def error_analysis(
    fused_correct: torch.Tensor, unimodal_correct: Mapping[str, torch.Tensor]
) -> dict[str, dict[str, float]]:
    """Fused accuracy within each group of samples defined by which unimodal predictors are
    right (both / only one / none for two modalities; every pattern for M modalities)."""
    patterns = correctness_pattern(unimodal_correct)
    fused = fused_correct.cpu().numpy().astype(bool)
    groups = {}
    for pattern in sorted(set(patterns), key=lambda p: (-p.count("+"), p == "none", p)):
        mask = patterns == pattern
        groups[pattern] = {"n": int(mask.sum()), "fused_accuracy": float(fused[mask].mean())}
    return groups


def accuracy_by_annotation(
    correct: torch.Tensor, annotations: Mapping[str, np.ndarray]
) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy per value of every annotation column (e.g. the synthetic S / U1 / U2 groups)."""
    flags = correct.cpu().numpy().astype(bool)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column, values in annotations.items():
        result[column] = {
            str(v): {"n": int((values == v).sum()), "accuracy": float(flags[values == v].mean())}
            for v in sorted(set(values.tolist()))
        }
    return result
