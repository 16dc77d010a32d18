"""The paper's claims, checked on our results: computed from ``results.csv``, never hand-written.

Per dataset (test split, paired over seeds):

* the rank of MCR among the multimodal methods (by mean accuracy, 1 = best);
* MCR minus Ensemble, and MCR minus the best other multimodal method, with paired t-test and
  Wilcoxon signed-rank p-values over seeds;
* whether the weak modality (lowest unimodal accuracy) is used more: MCR's in-model accuracy of
  that modality minus joint training's, with the same tests;
* MCR as the paper ran it (``mcr_pre``, encoders from the unimodal runs) minus Uni-Pre
  Finetuned, the same initialisation without the regulariser: the regulariser's own effect.

"Best other" never counts an MCR variant, so MCR is not measured against itself.

A claim "holds" only when the difference is positive *and* the paired t-test gives p < alpha;
a positive but non-significant difference is reported as such, a negative one as not holding.
With three seeds the Wilcoxon test cannot go below p = 0.25 (two-sided): it is shown for
completeness, the verdict uses the t-test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mcr.run_names import UNIMODAL_PREFIX


@dataclass(frozen=True)
class Comparison:
    """One paired comparison over seeds."""

    difference: float  # mean of (a - b), in accuracy points (0..1)
    t_pvalue: float  # paired t-test, two-sided (nan with < 2 pairs or zero variance)
    wilcoxon_pvalue: float  # Wilcoxon signed-rank, two-sided (nan when undefined)
    pairs: int

    def verdict(self, alpha: float) -> str:
        if self.pairs == 0 or math.isnan(self.difference):
            return "n/a"
        if self.difference <= 0:
            return "does not hold"
        if not math.isnan(self.t_pvalue) and self.t_pvalue < alpha:
            return "holds"
        return "not significant"


def paired(a: pd.Series, b: pd.Series) -> Comparison:
    """Compare two per-seed series on the seeds they share."""
    from scipy import stats

    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    n = len(joined)
    if n == 0:
        return Comparison(math.nan, math.nan, math.nan, 0)
    diff = (joined.iloc[:, 0] - joined.iloc[:, 1]).to_numpy(dtype=float)
    t_p = w_p = math.nan
    if n >= 2 and np.std(diff) > 0:
        t_p = float(stats.ttest_rel(joined.iloc[:, 0], joined.iloc[:, 1]).pvalue)
    if n >= 2 and np.any(diff != 0):
        w_p = float(stats.wilcoxon(diff).pvalue)
    return Comparison(float(diff.mean()), t_p, w_p, n)


def per_seed(results: pd.DataFrame, dataset: str, column: str = "accuracy") -> pd.DataFrame:
    """seed x method table of one test-split column for one dataset."""
    rows = results[(results["dataset"] == dataset) & (results["split"] == "test")]
    return rows.pivot_table(index="seed", columns="method", values=column, aggfunc="mean")


def weak_modality(results: pd.DataFrame, dataset: str) -> str | None:
    """The modality whose unimodal model has the lowest mean test accuracy."""
    acc = per_seed(results, dataset)
    unimodal = {
        c[len(UNIMODAL_PREFIX) :]: acc[c].mean() for c in acc if c.startswith(UNIMODAL_PREFIX)
    }
    return min(unimodal, key=unimodal.get) if unimodal else None


def check_claims(
    results: pd.DataFrame, reference: str = "mcr", alpha: float = 0.05
) -> pd.DataFrame:
    """One row per dataset where ``reference`` ran; columns as in the module docstring."""
    rows = []
    for dataset in dict.fromkeys(results["dataset"]):
        acc = per_seed(results, dataset)
        if reference not in acc:
            continue
        multimodal = [c for c in acc if not c.startswith(UNIMODAL_PREFIX)]
        means = acc[multimodal].mean().sort_values(ascending=False)
        others = [m for m in means.index if not m.startswith("mcr")]
        row: dict[str, object] = {
            "dataset": dataset,
            "methods": len(multimodal),
            "mcr_rank": int(list(means.index).index(reference)) + 1,
            "mcr_accuracy": float(means[reference]),
        }
        if "ensemble" in acc:
            row.update(_as_columns("vs_ensemble", paired(acc[reference], acc["ensemble"]), alpha))
        if others:
            row["best_other"] = others[0]
            row.update(_as_columns("vs_best_other", paired(acc[reference], acc[others[0]]), alpha))
        weak = weak_modality(results, dataset)
        column = f"{weak}_in_model_accuracy"
        if weak is not None and column in results and "joint" in acc:
            in_model = per_seed(results, dataset, column)
            row["weak_modality"] = weak
            row.update(
                _as_columns("weak_vs_joint", paired(in_model[reference], in_model["joint"]), alpha)
            )
        if "mcr_pre" in acc and "uni_pre_finetuned" in acc:
            pre = paired(acc["mcr_pre"], acc["uni_pre_finetuned"])
            row.update(_as_columns("pre_vs_uni_pre", pre, alpha))
        rows.append(row)
    return pd.DataFrame(rows)


def _as_columns(prefix: str, comparison: Comparison, alpha: float) -> dict[str, object]:
    return {
        f"{prefix}_diff": comparison.difference,
        f"{prefix}_t_p": comparison.t_pvalue,
        f"{prefix}_wilcoxon_p": comparison.wilcoxon_pvalue,
        f"{prefix}_verdict": comparison.verdict(alpha),
    }


def claims_markdown(claims: pd.DataFrame, display: dict[str, str], alpha: float = 0.05) -> str:
    """The claims table as Markdown, differences in accuracy points."""
    if claims.empty:
        return "MCR did not run on any dataset: no claims to check."

    def cell(row: pd.Series, prefix: str) -> str:
        diff = row.get(f"{prefix}_diff")
        if diff is None or (isinstance(diff, float) and math.isnan(diff)):
            return "–"
        t_p, w_p = row[f"{prefix}_t_p"], row[f"{prefix}_wilcoxon_p"]
        return f"{100 * diff:+.1f} (t p={_p(t_p)}, W p={_p(w_p)}): {row[f'{prefix}_verdict']}"

    lines = [
        (
            "| Dataset | MCR rank | MCR − Ensemble | MCR − best other | Weak modality used more "
            "than by joint training (in-model accuracy) | MCR-pre − Uni-Pre Finetuned |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for _, row in claims.iterrows():
        best = display.get(str(row.get("best_other")), str(row.get("best_other", "–")))
        weak = row.get("weak_modality", "–")
        lines.append(
            f"| {row['dataset']} | {row['mcr_rank']} of {row['methods']} | "
            f"{cell(row, 'vs_ensemble')} | {best}: {cell(row, 'vs_best_other')} | "
            f"{weak}: {cell(row, 'weak_vs_joint')} | {cell(row, 'pre_vs_uni_pre')} |"
        )
    held = int((claims.get("vs_best_other_verdict") == "holds").sum())
    lines += [
        "",
        (
            f"A claim holds when MCR's mean is higher and the paired t-test over seeds gives "
            f"p < {alpha}. MCR is significantly best on {held} of {len(claims)} datasets. "
            "With three seeds the two-sided Wilcoxon test cannot go below p = 0.25, so it can "
            "only confirm the direction; a verdict rests on the t-test."
        ),
    ]
    return "\n".join(lines)


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
