"""Rule train_model: train one dataset x method x seed run.

Inputs: the dataset folder, the ``train`` params, unimodal runs where the method needs them.
Outputs: ``<out>/best.pt``, ``history.csv``, ``train_summary.json`` (and ``last.pt``).
"""

import argparse
import logging

from mcr.config import load_params
from mcr.methods import split_method_name
from mcr.pipeline import method_train_params, train_model

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--method", required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--params", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--unimodal", action="append", default=[], help="MODALITY=RUN_DIR")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

train = load_params(args.params)["train"]
train_model(
    dataset_folder=args.data,
    dataset=args.dataset,
    method=args.method,
    seed=args.seed,
    train_params=method_train_params(train, split_method_name(args.method)[0]),
    out_dir=args.out,
    unimodal_runs=dict(item.split("=", 1) for item in args.unimodal),
)
