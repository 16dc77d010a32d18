"""Rule track_runs: log every finished run of one dataset to MLflow (one experiment).

With a tracking server (``MLFLOW_TRACKING_URI=http://...``) that does not answer, the job fails
(a rerun logs the runs); a run that the training job logged live is completed in place.

Inputs: each run's ``train_summary.json`` and ``history.csv``, the dataset's ``metrics.json``
(rule evaluate_runs). Output:
``<out>`` listing the MLflow run id of every run (null where tracking failed; results are intact).
"""

import argparse
import sys
from pathlib import Path

from mcr.tracking import server_problem, track_runs, tracking_uri

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--metrics", required=True, type=Path, help="data/metrics/<dataset>.json")
parser.add_argument("--out", required=True)
parser.add_argument("--runs", required=True, type=Path, help="data/runs/<dataset>")
parser.add_argument("--data", type=Path, help="data/features/<dataset>: the run's dataset input")
parser.add_argument(
    "--methods", nargs="+", required=True, help="run names (unimodal_<m> included)"
)
parser.add_argument("--seeds", type=int, nargs="+", required=True)
args = parser.parse_args()

if problem := server_problem(tracking_uri(Path.cwd())):  # fail: a rerun then logs the runs
    sys.exit(f"track_runs: {problem}; start the tracking server (mcr tracking-server start) and "
             "rerun: the results are on disk, only their tracking is missing")  # fmt: skip
runs = [args.runs / method / f"seed{seed}" for method in args.methods for seed in args.seeds]
logged = track_runs(args.dataset, runs, Path.cwd(), args.out, metrics_file=args.metrics,
                    data_folder=args.data)  # fmt: skip
print(f"tracked {sum(v is not None for v in logged.values())}/{len(logged)} runs")
