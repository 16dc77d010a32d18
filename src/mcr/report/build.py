"""The report: ``results.csv`` (every metric of every run), ``summary.md`` (Table-1 style) and
the figures, all computed from the per-run metrics files."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcr.report import figures
from mcr.report.ablations import ablation_markdown, ablation_runs
from mcr.report.claims import check_claims, claims_markdown
from mcr.report.tables import columns_with_values, mean_std, results_table, table1_markdown


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` params block."""

    method_order: tuple[str, ...] = ()  # row order of tables and legend order of figures
    display_names: dict[str, str] = field(default_factory=dict)  # registry name -> label
    paper_results: dict[str, dict[str, str]] = field(default_factory=dict)  # dataset -> method
    ablations: dict[str, dict[str, str]] = field(default_factory=dict)  # axis -> label -> run
    ablation_reference: str = "mcr_pre"  # the full method every ablation row is compared with


@dataclass(frozen=True)
class ReportPaths:
    results_csv: Path
    summary_md: Path
    sweep_png: Path
    utilisation_png: Path
    error_analysis_png: Path


def ceiling_notes(
    results: pd.DataFrame, summary: pd.DataFrame, ceilings: Mapping[str, float]
) -> list[str]:
    """How close the best method gets to each dataset's ceiling, and what that leaves to win."""
    gaps, near = [], []
    for dataset, ceiling in ceilings.items():
        part = summary[summary["dataset"] == dataset]
        test = results[(results["dataset"] == dataset) & (results["split"] == "test")]
        if part.empty or test.empty:
            continue
        gap = part["mean"].max() - 100 * ceiling
        error = 100 * math.sqrt(ceiling * (1 - ceiling) / float(test["n"].iloc[0]))
        gaps.append(f"{dataset} {gap:+.1f} (SE {error:.1f})")
        if abs(gap) <= 2 * error:
            near.append(dataset)
    if not gaps:
        return []
    verdict = (
        f"On {len(near)} of {len(gaps)} of these datasets the best method is within two "
        "standard errors of the optimum: there the task leaves no room for a balancing method "
        "to win, and the differences between methods are noise."
        if near
        else "No best method is within two standard errors of the optimum."
    )
    return [
        (
            "The synthetic generator is known, so its Bayes classifier gives the accuracy no "
            "model can beat in expectation (last row, on the same test rows). Best method minus "
            "that optimum, in points, with the standard error of a test accuracy on these rows: "
            + ", ".join(gaps)
            + ". "
            + verdict
        ),
        "",
    ]


def table_per_family(
    summary: pd.DataFrame,
    datasets: list[str],
    sweep_levels: Mapping[str, float],
    order: list[str],
    display: Mapping[str, str],
    config: ReportConfig,
    ceilings: Mapping[str, float],
) -> list[str]:
    """Table 1 as one table per sweep family, then one for every other dataset: a reader
    compares the levels of one regime, not fourteen columns at once."""
    groups: dict[str, list[str]] = {}
    for dataset in datasets:
        family = figures.sweep_family(dataset) if dataset in sweep_levels else ""
        groups.setdefault(family, []).append(dataset)
    lines = []
    for family, names in sorted(groups.items(), key=lambda kv: not kv[0]):  # real ones last
        part = summary[summary["dataset"].isin(names)]
        if len(groups) > 1:
            lines += [f"### {family} (U1/S levels)" if family else "### Real datasets", ""]
        own_ceilings = {d: c for d, c in ceilings.items() if d in names}
        lines += [table1_markdown(part, order, display, config.paper_results, own_ceilings), ""]
    return lines


def _format_utilisation(results: pd.DataFrame, dataset: str, order: list[str], display) -> str:
    part = results[(results["split"] == "test") & (results["dataset"] == dataset)]
    columns = columns_with_values(part, "", "_in_model_accuracy")
    if part.empty or not columns:
        return ""
    stats = part.groupby("method")[columns].mean() * 100
    methods = [m for m in order if m in stats.index] + sorted(set(stats.index) - set(order))
    names = [c[: -len("_in_model_accuracy")] for c in columns]
    lines = ["| Method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in methods:
        cells = ["–" if pd.isna(v) else f"{v:.1f}" for v in stats.loc[m]]
        lines.append(f"| {display.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_report(
    metric_files: Iterable[str | Path],
    config: ReportConfig,
    sweep_levels: Mapping[str, float],
    paths: ReportPaths,
    ceilings: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Write every report file; returns the results table.

    ``ceilings``: dataset -> the best accuracy any model can reach in expectation (the Bayes
    classifier of a known generator); shown under the table with each dataset's gap to it.
    """
    ceilings = dict(ceilings or {})
    everything = results_table(metric_files)
    paths.results_csv.parent.mkdir(parents=True, exist_ok=True)
    everything.to_csv(paths.results_csv, index=False, float_format="%.6g")
    order = list(config.method_order)
    # The ablation variants appear in their own table only: in Table 1, the claims and the
    # figures they would be a dozen more MCR rows on a few datasets.
    variants = ablation_runs(config.ablations) - set(order) - {config.ablation_reference}
    results = everything[~everything["method"].isin(variants)]
    methods = order + sorted(set(results["method"]) - set(order))
    display = config.display_names
    summary_all = mean_std(everything, "accuracy")  # the ablation table reads the variants
    summary = summary_all[~summary_all["method"].isin(variants)]
    datasets = list(dict.fromkeys(results["dataset"]))
    most_imbalanced: dict[str, str] = {}  # sweep family -> its highest level's dataset
    for dataset in sorted(sweep_levels, key=sweep_levels.get):
        most_imbalanced[figures.sweep_family(dataset)] = dataset
    focus = list(most_imbalanced.values()) or datasets[-1:]
    panels = focus + [d for d in datasets if d not in sweep_levels and d not in focus]
    figures.imbalance_sweep(results, sweep_levels, methods, display, paths.sweep_png, ceilings)
    figures.modality_utilisation(results, panels, methods, display, paths.utilisation_png)
    figures.error_analysis(results, panels, methods, display, paths.error_analysis_png)
    seeds = sorted(results["seed"].unique())
    md = [
        "# Results",
        "",
        (
            f"Test accuracy (%), mean ± std over seeds {', '.join(map(str, seeds))}; best per "
            "column in bold; the paper's number and our difference from it in parentheses "
            "where a dataset matches one of its columns. Model selection on validation only. "
            "Generated from `reports/results.csv`."
        ),
        "",
        *table_per_family(summary, datasets, sweep_levels, order, display, config, ceilings),
        *ceiling_notes(results, summary, ceilings),
        "## Ablations",
        "",
        (
            f"Which part of MCR does anything: {display.get(config.ablation_reference)} (the "
            "reference row of every block) against variants that change one part -- the game, "
            "the loss terms, the perturbation (`train.variants` in params/train.yaml). Test "
            "accuracy (%), mean ± std over seeds; Δ is the row's mean minus the reference's, "
            "averaged over the datasets shown."
        ),
        "",
        ablation_markdown(summary_all, config.ablations, config.ablation_reference)
        or "No ablation runs in this run (`train.variants` names none of its datasets).",
        "",
        "## Claims check",
        "",
        (
            "The paper's claims, recomputed from `reports/results.csv` on every run: MCR's rank, "
            "MCR against Ensemble and against the best other (non-MCR) method, whether MCR's "
            "fused model uses the weak modality (lowest unimodal accuracy) more than joint "
            "training, and MCR as the paper ran it (from the unimodal runs) against Uni-Pre "
            "Finetuned, the same initialisation without the regulariser. "
            "Differences in accuracy points; p-values paired over seeds."
        ),
        "",
        claims_markdown(check_claims(results), display),
        "",
        "## Per-modality utilisation",
        "",
        (
            "In-model test accuracy (%) of each modality's fused contribution alone "
            "(W_m z_m + b/M): how much the fused model uses each modality. The most imbalanced "
            "level of each synthetic sweep, and every real dataset."
        ),
        "",
    ]
    for dataset in panels:
        md += [f"### {dataset}", "", _format_utilisation(results, dataset, order, display), ""]
    md += [
        "## Figures",
        "",
        f"![imbalance sweep]({paths.sweep_png.relative_to(paths.summary_md.parent)})",
        f"![modality utilisation]({paths.utilisation_png.relative_to(paths.summary_md.parent)})",
        f"![error analysis]({paths.error_analysis_png.relative_to(paths.summary_md.parent)})",
        "",
    ]
    paths.summary_md.write_text("\n".join(md))
    return results
