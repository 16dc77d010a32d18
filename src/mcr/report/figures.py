"""Figures of the report: imbalance sweep (paper Fig. 1), modality utilisation, error analysis
(paper Fig. 4). Pure: a tidy results table in, a PNG out.

Readability rules every figure follows: one panel per sweep family or dataset, holding only that
dataset's modalities and groups; legends outside the axes; in the sweep, the methods a reader
compares (MCR, Joint Training, Ensemble, Uni-Pre Finetuned, the best other method, the Bayes
optimum) drawn strong with fixed colours and markers, every other method thin grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from mcr.report.tables import columns_with_values

#: What one panel of a figure shows: its title, legend entries and x tick labels.
Panel = dict[str, list[str] | str]

#: The sweep's strong lines: registry name -> (colour, marker). Fixed, so a method keeps its
#: colour from one figure and run to the next.
STRONG = {
    "mcr": ("#d62728", "o"),
    "mcr_pre": ("#8c1c13", "D"),
    "joint": ("#1f77b4", "s"),
    "ensemble": ("#2ca02c", "^"),
    "uni_pre_finetuned": ("#9467bd", "v"),
}
BEST_OTHER = ("#ff7f0e", "P")
GREY = "#9a9a9a"
#: Categorical colours of bars (modalities, sample groups): colour-blind-safe, 8 distinct.
BAR_COLOURS = [
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#000000",
]


def _save(fig: plt.Figure, path: str | Path) -> list[Panel]:
    """Write the PNG; return what each panel shows (title, legend entries, x tick labels), so
    tests and callers can check a figure without looking at pixels."""
    panels = []
    for ax in fig.axes:
        legend = ax.get_legend()
        panels.append({
            "title": ax.get_title(),
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
            "xticks": [t.get_text() for t in ax.get_xticklabels()],
        })  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps the legends outside the axes
    plt.close(fig)
    return panels


def _message(text: str, path: str | Path) -> list[Panel]:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    ax.set_axis_off()
    return _save(fig, path)


def sweep_family(dataset: str) -> str:
    """``synthetic_paper_r4`` -> ``synthetic_paper``: the sweep a level belongs to."""
    return dataset.rsplit("_r", 1)[0]


def best_other_method(stats: Mapping[str, pd.DataFrame], exclude: Sequence[str]) -> str | None:
    """The method with the highest mean accuracy over the levels, outside ``exclude`` and the
    unimodal runs."""
    scores = {
        m: s["mean"].mean()
        for m, s in stats.items()
        if m not in exclude and not m.startswith("unimodal_")
    }
    return max(scores, key=scores.get) if scores else None


def imbalance_sweep(
    results: pd.DataFrame,
    levels: Mapping[str, float],
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
    ceilings: Mapping[str, float] | None = None,
) -> list[Panel]:
    """Test accuracy against the U1/S ratio, one panel per sweep family (mean ± std over seeds)."""
    part = results[(results["split"] == "test") & results["dataset"].isin(list(levels))].copy()
    if part.empty:  # e.g. a paper profile that runs one benchmark only
        return _message(
            "No synthetic sweep in this run\n(data.sweep.u1_to_s_ratio is empty)", path
        )
    part["level"] = part["dataset"].map(levels)
    part["family"] = part["dataset"].map(sweep_family)
    families = list(dict.fromkeys(part.sort_values("level")["family"]))
    fig, axes = plt.subplots(
        1, len(families), figsize=(6.2 * len(families), 5.6), squeeze=False, layout="constrained"
    )
    for ax, family in zip(axes[0], families, strict=True):
        rows = part[part["family"] == family]
        stats = {
            m: rows[rows["method"] == m].groupby("level")["accuracy"].agg(["mean", "std"])
            .fillna(0.0).sort_index() * 100
            for m in methods
            if (rows["method"] == m).any()
        }  # fmt: skip
        best = best_other_method(stats, tuple(STRONG))
        handles = []
        for method, s in stats.items():
            if method not in STRONG and method != best:
                ax.plot(s.index, s["mean"], color=GREY, lw=0.8, alpha=0.7, zorder=1)
        for method, s in stats.items():
            if method in STRONG or method == best:
                colour, marker = STRONG.get(method, BEST_OTHER)
                label = display.get(method, method)
                if method == best:
                    label = f"best other: {label}"
                ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"],
                                color=colour, alpha=0.15, lw=0, zorder=2)  # fmt: skip
                (line,) = ax.plot(s.index, s["mean"], color=colour, marker=marker, lw=2,
                                  ms=6, label=label, zorder=3)  # fmt: skip
                handles.append(line)
        bayes = {levels[d]: 100 * c for d, c in (ceilings or {}).items()
                 if d in levels and sweep_family(d) == family}  # fmt: skip
        if bayes:
            xs = sorted(bayes)
            (line,) = ax.plot(xs, [bayes[x] for x in xs], color="black", ls="--", marker="*",
                              ms=8, lw=1.5, label="Bayes optimum", zorder=3)  # fmt: skip
            handles.append(line)
        handles.append(Line2D([], [], color=GREY, lw=0.8, label="every other method"))
        ax.set_title(f"{family}: U2 fixed, U1/S grows")
        ax.set_xlabel("imbalance: fraction U1 / fraction S")
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
                  fontsize=9, frameon=False)  # fmt: skip
    return _save(fig, path)


def _grouped_bars(
    ax: plt.Axes,
    part: pd.DataFrame,
    shown: list[str],
    columns: list[str],
    labels: list[str],
    display: Mapping[str, str],
) -> None:
    """One group of bars per method, one bar per column (mean over seeds, in %)."""
    width = 0.8 / max(1, len(columns))
    for i, (column, label) in enumerate(zip(columns, labels, strict=True)):
        means = [part.loc[part["method"] == m, column].mean() * 100 for m in shown]
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(shown))]
        ax.bar(xs, means, width, label=label, color=BAR_COLOURS[i % len(BAR_COLOURS)])
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([display.get(m, m) for m in shown], rotation=35, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def _panels(datasets: Sequence[str]) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(
        len(datasets), 1, figsize=(12, 4.4 * len(datasets)), squeeze=False, layout="constrained"
    )
    return fig, list(axes[:, 0])


def modality_utilisation(
    results: pd.DataFrame,
    datasets: Sequence[str],
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
) -> list[Panel]:
    """In-model test accuracy of each modality's fused contribution alone; a panel per dataset."""
    test = results[results["split"] == "test"]
    datasets = [d for d in datasets if (test["dataset"] == d).any()]
    if not datasets:
        return _message("No test results in this run", path)
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        part = test[test["dataset"] == dataset]
        columns = columns_with_values(part, "", "_in_model_accuracy")
        shown = [m for m in methods if (part["method"] == m).any()]
        names = [c[: -len("_in_model_accuracy")] for c in columns]
        _grouped_bars(ax, part, shown, columns, [f"modality {n}" for n in names], display)
        ax.set_ylabel("in-model test acc. (%)")
        ax.set_title(f"{dataset}: accuracy of each modality's fused contribution W_m z_m + b/M")
    return _save(fig, path)


def error_analysis(
    results: pd.DataFrame,
    datasets: Sequence[str],
    methods: list[str],
    display: Mapping[str, str],
    path: str | Path,
) -> list[Panel]:
    """Fused test accuracy within groups of samples by which unimodal runs are right; a panel
    per dataset, only that dataset's groups."""
    test = results[results["split"] == "test"]
    datasets = [
        d
        for d in datasets
        if columns_with_values(test[test["dataset"] == d], "ea_", "_fused_accuracy")
    ]
    if not datasets:
        return _message("No error analysis in this run (it needs the unimodal runs)", path)
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        part = test[test["dataset"] == dataset]
        groups = sorted(  # every unimodal run right first, none right last
            (
                c[len("ea_") : -len("_fused_accuracy")]
                for c in columns_with_values(part, "ea_", "_fused_accuracy")
            ),
            key=lambda g: (0 if g == "none" else -len(g.split("+")), g),
        )
        columns = [f"ea_{g}_fused_accuracy" for g in groups]
        sizes = [part[f"ea_{g}_n"].mean() for g in groups]
        labels = [
            f"unimodal right: {'none' if g == 'none' else g} (n ≈ {n:.0f})"
            for g, n in zip(groups, sizes, strict=True)
        ]
        shown = [m for m in methods if (part["method"] == m).any() and "unimodal_" not in m]
        _grouped_bars(ax, part, shown, columns, labels, display)
        ax.set_ylabel("fused test acc. in group (%)")
        ax.set_title(f"{dataset}: fused accuracy by which unimodal runs are right")
    return _save(fig, path)
