"""Rule evaluate_runs: evaluate every run of one dataset on val and test.

Inputs: ``<runs>/<method>/seed<s>/best.pt`` for every method and seed (the unimodal runs of a
seed are also the reference predictors of its error analysis). Output: ``data/metrics/<dataset>.json``,
one record per run.
"""

import argparse
import logging
from pathlib import Path

from mcr.workflow.stages import evaluate_dataset

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--methods", nargs="+", required=True)
parser.add_argument("--seeds", type=int, nargs="+", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--runs", required=True, type=Path, help="data/runs/<dataset>")
parser.add_argument("--out", required=True, type=Path)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

evaluate_dataset(args.data, args.dataset, args.runs, args.methods, args.seeds, args.out)
