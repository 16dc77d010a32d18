"""Metric functions on tensors, shared by validation (training) and the final evaluation.

Kept dependency-free (torch only) and exact, so tests can check them on hand-computed cases.
"""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(-1) == labels).float().mean())


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes that occur in labels or predictions."""
    f1s = []
    for c in range(num_classes):
        tp = int(((predictions == c) & (labels == c)).sum())
        fp = int(((predictions == c) & (labels != c)).sum())
        fn = int(((predictions != c) & (labels == c)).sum())
        if tp + fp + fn == 0:
            continue  # class absent from both: undefined, left out (sklearn's labels= behaviour)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(f1s) / len(f1s)) if f1s else 0.0


def mean_absolute_error(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((outputs.reshape(-1) - targets.reshape(-1)).abs().mean())


def pearson_r(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Pearson correlation; 0.0 when either side is constant (undefined correlation)."""
    x = outputs.reshape(-1).double() - outputs.double().mean()
    y = targets.reshape(-1).double() - targets.double().mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else 0.0


def binary_accuracy_nonzero(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Sign agreement on samples whose target is not 0 (MOSI/MOSEI "Acc-2, non-zero")."""
    outputs, targets = outputs.reshape(-1), targets.reshape(-1)
    keep = targets != 0
    if not bool(keep.any()):
        return float("nan")
    return float(((outputs[keep] > 0) == (targets[keep] > 0)).float().mean())
