"""Stratified train/val/test index splits, shared by every dataset generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_split_fractions(fractions: Sequence[float]) -> None:
    """Raise ``ValueError`` unless ``fractions`` are three positive numbers summing to 1."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split_fractions={tuple(fractions)}: expected 3 values, sum 1")
    if min(fractions) <= 0:
        raise ValueError(f"split_fractions={tuple(fractions)}: expected all > 0")


def stratified_split(labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator):
    """Indices of each split, with every class divided in the given fractions."""
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, bounds), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]
