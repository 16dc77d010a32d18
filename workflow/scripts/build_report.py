"""Rule build_report: results.csv, summary.md and the figures, from the metrics files.

Inputs: every dataset's ``metrics.json`` (all its runs); the ``report`` and ``data`` params (the
synthetic generator's params give the Bayes-optimal ceiling of its datasets). Outputs:
``reports/``.
"""

import argparse
from pathlib import Path

from mcr.config import from_mapping, load_params
from mcr.data.synthetic import SyntheticConfig, bayes_optimal_accuracy
from mcr.report import ReportConfig, ReportPaths, build_report
from mcr.workflow.layout import pipeline_datasets, sweep_level

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", action="append", required=True)
parser.add_argument("--out", required=True, type=Path)
parser.add_argument("metrics", nargs="+")
args = parser.parse_args()

params = load_params(*args.params)
datasets = pipeline_datasets(params["data"])
levels = {n: sweep_level(n) for n in datasets if sweep_level(n) is not None}
ceilings = {  # the generator is known: its Bayes classifier's test accuracy is the ceiling
    n: bayes_optimal_accuracy(from_mapping(SyntheticConfig, s.params, s.params_key))
    for n, s in datasets.items()
    if s.generator == "synthetic"
}
build_report(
    args.metrics,
    from_mapping(ReportConfig, params["report"], "report"),
    levels,
    ReportPaths(
        results_csv=args.out / "results.csv",
        summary_md=args.out / "summary.md",
        sweep_png=args.out / "figures/imbalance_sweep.png",
        utilisation_png=args.out / "figures/modality_utilisation.png",
        error_analysis_png=args.out / "figures/error_analysis.png",
    ),
    ceilings=ceilings,
)
