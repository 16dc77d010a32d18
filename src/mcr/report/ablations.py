"""The ablation table: which part of MCR does anything.

Rows are the ablation axes of ``report.ablations`` (params/report.yaml) -- the game, the loss
components, the perturbation -- each a list of ``label -> run name`` whose runs are the method
variants of ``train.variants`` (and the full method itself, as the reference row of every axis).
Columns are the datasets any of these runs ran on; a cell is the test accuracy (%), mean ± std
over seeds, and the last column the mean difference from the axis's reference row over those
datasets, so a reader sees at a glance whether removing or swapping a part moves anything.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def ablation_runs(ablations: Mapping[str, Mapping[str, str]]) -> set[str]:
    """Every run name the ablation table shows."""
    return {run for axis in ablations.values() for run in axis.values()}


def ablation_markdown(
    summary: pd.DataFrame, ablations: Mapping[str, Mapping[str, str]], reference: str
) -> str:
    """The table, from ``mean_std`` rows (dataset, method, mean, std); empty without runs.

    ``reference``: the run every row is compared with (the full method, e.g. ``mcr_pre``).
    """
    runs = ablation_runs(ablations) - {reference}
    part = summary[summary["method"].isin(runs | {reference})]
    datasets = list(dict.fromkeys(part.loc[part["method"].isin(runs), "dataset"]))
    if not datasets:
        return ""
    cell = {(r.dataset, r.method): r for r in part.itertuples()}
    header = ["Ablation", "Variant", *datasets, f"Δ vs {reference} (mean)"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for axis, rows in ablations.items():
        for i, (label, run) in enumerate(rows.items()):
            cells, deltas = [], []
            for d in datasets:
                r, ref = cell.get((d, run)), cell.get((d, reference))
                cells.append("–" if r is None else f"{r.mean:.1f} ± {r.std:.1f}")
                if r is not None and ref is not None:
                    deltas.append(r.mean - ref.mean)
            if run == reference:
                delta = "(reference)"
            else:
                delta = f"{sum(deltas) / len(deltas):+.1f}" if deltas else "–"
            first = axis if i == 0 else ""
            lines.append(f"| {first} | {label} | " + " | ".join(cells) + f" | {delta} |")
    return "\n".join(lines)
