"""Rule track_runs: log every finished run of one dataset to MLflow (one experiment).

Inputs: each run's ``train_summary.json``, ``history.csv`` and ``metrics.json``. Output:
``<out>`` listing the MLflow run id of every run (null where tracking failed; results are intact).
"""

import argparse
from pathlib import Path

from mcr.tracking import track_runs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("runs", nargs="+")
args = parser.parse_args()

logged = track_runs(args.dataset, args.runs, Path.cwd(), args.out)
print(f"tracked {sum(v is not None for v in logged.values())}/{len(logged)} runs")
