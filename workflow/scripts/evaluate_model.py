"""Rule evaluate_model: evaluate every seed of one method on val and test.

Inputs: ``<runs>/<method>/seed<s>/best.pt`` and the unimodal runs of each seed (reference
predictors of the error analysis). Outputs: ``<runs>/<method>/seed<s>/metrics.json``.
"""

import argparse
from pathlib import Path

from mcr.pipeline import evaluate_method

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--method", required=True)
parser.add_argument("--seeds", type=int, nargs="+", required=True)
parser.add_argument("--modalities", nargs="+", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--runs", required=True, type=Path)
args = parser.parse_args()

evaluate_method(
    dataset_folder=args.data,
    dataset=args.dataset,
    run_dirs=[args.runs / args.method / f"seed{s}" for s in args.seeds],
    reference_runs=[
        {m: args.runs / f"unimodal_{m}" / f"seed{s}" for m in args.modalities} for s in args.seeds
    ],
    metrics_paths=[args.runs / args.method / f"seed{s}" / "metrics.json" for s in args.seeds],
)
