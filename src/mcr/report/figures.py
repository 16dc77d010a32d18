"""Figures of the report: imbalance sweep (paper Fig. 1), modality utilisation, error analysis
(paper Fig. 4). Pure: a tidy results table in, a PNG out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
import pandas as pd


def _save(fig: plt.Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def imbalance_sweep(
    results: pd.DataFrame,
    levels: Mapping[str, float],
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
) -> None:
    """Test accuracy against the U1/S ratio, one line per method (mean ± std over seeds)."""
    part = results[(results["split"] == "test") & results["dataset"].isin(list(levels))].copy()
    part["level"] = part["dataset"].map(levels)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if part.empty:  # e.g. a paper profile that runs one benchmark only
        ax.text(0.5, 0.5, "No synthetic sweep in this run\n(data.sweep.u1_to_s_ratio is empty)",
                ha="center", va="center", fontsize=12, transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        _save(fig, path)
        return
    for method in methods:
        rows = part[part["method"] == method]
        if rows.empty:
            continue
        stats = rows.groupby("level")["accuracy"].agg(["mean", "std"]).fillna(0.0).sort_index()
        ax.plot(stats.index, stats["mean"] * 100, marker="o", label=display.get(method, method))
        ax.fill_between(
            stats.index,
            (stats["mean"] - stats["std"]) * 100,
            (stats["mean"] + stats["std"]) * 100,
            alpha=0.15,
        )
    ax.set_xlabel("imbalance: fraction U1 / fraction S")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Synthetic imbalance sweep (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def modality_utilisation(
    results: pd.DataFrame,
    dataset: str,
    modalities: list[str],
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
) -> None:
    """In-model test accuracy of each modality's fused contribution alone, per method."""
    part = results[(results["split"] == "test") & (results["dataset"] == dataset)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shown = [m for m in methods if m in set(part["method"])]
    width = 0.8 / max(1, len(modalities))
    for i, modality in enumerate(modalities):
        column = f"{modality}_in_model_accuracy"
        if column not in part:
            continue
        means = [part[part["method"] == m][column].mean() * 100 for m in shown]
        ax.bar([x + i * width for x in range(len(shown))], means, width, label=modality)
    ax.set_xticks([x + width * (len(modalities) - 1) / 2 for x in range(len(shown))])
    ax.set_xticklabels([display.get(m, m) for m in shown], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("in-model test accuracy (%)")
    ax.set_title(f"Per-modality utilisation on {dataset}: accuracy of W_m z_m + b/M alone")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def error_analysis(
    results: pd.DataFrame,
    dataset: str,
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
) -> None:
    """Fused test accuracy within groups of samples by which unimodal models are right."""
    part = results[(results["split"] == "test") & (results["dataset"] == dataset)]
    columns = [c for c in part.columns if c.startswith("ea_") and c.endswith("_fused_accuracy")]
    groups = [c[len("ea_") : -len("_fused_accuracy")] for c in columns]
    shown = [m for m in methods if m in set(part["method"]) and not m.startswith("unimodal_")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(shown))
    for i, method in enumerate(shown):
        rows = part[part["method"] == method]
        means = [rows[c].mean() * 100 for c in columns]
        ax.bar([x + i * width for x in range(len(groups))], means, width,
               label=display.get(method, method))  # fmt: skip
    ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(groups))])
    ax.set_xticklabels([f"correct: {g}" for g in groups])
    ax.set_ylabel("fused test accuracy in group (%)")
    ax.set_title(f"Error analysis on {dataset} (groups by unimodal-run correctness)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
