"""Result tables built from the per-run metrics JSON files (never from MLflow)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

KEY_COLUMNS = ["dataset", "method", "seed", "split"]


def flatten_split(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One split's metrics as flat columns (``m1_in_model_accuracy``, ``ea_m1+m2_n``, ...)."""
    row: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) or value is None:
            row[key] = value
    for modality, values in metrics.get("modalities", {}).items():
        for key, value in values.items():
            row[f"{modality}_{key}"] = value
    for pattern, group in metrics.get("error_analysis", {}).get("groups", {}).items():
        row[f"ea_{pattern}_n"] = group["n"]
        row[f"ea_{pattern}_fused_accuracy"] = group["fused_accuracy"]
    for column, values in metrics.get("annotations", {}).items():
        for value, group in values.items():
            row[f"{column}_{value}_accuracy"] = group["accuracy"]
    return row


def run_records(metric_files: Iterable[str | Path]) -> list[dict]:
    """The run results in metrics files: a dataset's file (``{"runs": {name: result}}``, the
    pipeline) holds every run of the dataset; a run's own file (``mcr evaluate``) holds one."""
    records = []
    for path in metric_files:
        content = json.loads(Path(path).read_text())
        records += list(content["runs"].values()) if "runs" in content else [content]
    return records


def results_table(metric_files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per dataset x method x seed x split, with every metric."""
    rows = []
    for result in run_records(metric_files):
        for split in ("val", "test"):
            rows.append(
                {
                    "dataset": result["dataset"],
                    "method": result["method"],
                    "seed": result["seed"],
                    "split": split,
                    **flatten_split(result[split]),
                }
            )
    table = pd.DataFrame(rows)
    return table.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def mean_std(
    results: pd.DataFrame, metric: str, split: str = "test", scale: float = 100.0
) -> pd.DataFrame:
    """Mean and std over seeds of ``metric`` per dataset x method (std 0 for a single seed)."""
    part = results[results["split"] == split]
    grouped = part.groupby(["dataset", "method"])[metric]
    out = pd.DataFrame({"mean": grouped.mean() * scale, "std": grouped.std(ddof=1) * scale})
    out["std"] = out["std"].fillna(0.0)
    out["n"] = grouped.count()
    return out.reset_index()


def paper_gap(ours: float, paper: str) -> str:
    """``"; -1.3"``: our mean minus the paper's (its ``"mean ± std"``); empty if unreadable."""
    try:
        theirs = float(paper.split("±")[0])
    except ValueError:
        return ""
    return f"; {ours - theirs:+.1f}"


def table1_markdown(
    summary: pd.DataFrame,
    method_order: list[str],
    display: Mapping[str, str],
    paper: Mapping[str, Mapping[str, str]] | None = None,
    ceilings: Mapping[str, float] | None = None,
) -> str:
    """Methods as rows, datasets as columns, ``mean ± std``, best mean per column in bold.

    Where ``paper`` has numbers for a dataset (e.g. the CREMA-D column of the MCR paper's Table
    1), they are shown beside ours with our difference from them: ``ours (paper; ±d)``. ``ceilings`` (dataset -> accuracy in
    [0, 1], e.g. the Bayes-optimal accuracy of a known generator) add a last, unranked row.
    """
    paper = paper or {}
    datasets = list(dict.fromkeys(summary["dataset"]))
    methods = [m for m in method_order if m in set(summary["method"])]
    methods += sorted(set(summary["method"]) - set(methods))
    cell = {(r.dataset, r.method): r for r in summary.itertuples()}
    best = {d: summary[summary["dataset"] == d]["mean"].max() for d in datasets}
    lines = ["| Method | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for method in methods:
        cells = []
        for d in datasets:
            r = cell.get((d, method))
            if r is None:
                cells.append("–")
                continue
            text = f"{r.mean:.1f} ± {r.std:.1f}"
            if abs(r.mean - best[d]) < 1e-9:
                text = f"**{text}**"
            if method in paper.get(d, {}):
                text += f" ({paper[d][method]}{paper_gap(r.mean, paper[d][method])})"
            cells.append(text)
        lines.append(f"| {display.get(method, method)} | " + " | ".join(cells) + " |")
    if ceilings:
        cells = [f"*{100 * ceilings[d]:.1f}*" if d in ceilings else "–" for d in datasets]
        lines.append("| *Bayes optimum (known generator)* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def columns_with_values(part: pd.DataFrame, prefix: str, suffix: str) -> list[str]:
    """Columns ``<prefix><name><suffix>`` that hold a value for these rows: a dataset's own
    modalities or error-analysis groups in the wide results table."""
    return [
        c
        for c in part.columns
        if c.startswith(prefix) and c.endswith(suffix) and part[c].notna().any()
    ]
