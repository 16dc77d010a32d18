"""Rule train_model: train one dataset x method, every seed, in one process.

Inputs: the dataset folder, the ``train`` params, unimodal runs where the method needs them.
Outputs, per seed: ``<runs>/<method>/seed<s>/best.pt``, ``history.csv``, ``train_summary.json``
(and ``last.pt``). A seed whose run already finished with the same params is not retrained.
"""

import argparse
import logging
from pathlib import Path

from mcr.config import load_params
from mcr.methods import split_method_name
from mcr.workflow.layout import method_train_params
from mcr.workflow.stages import train_model

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--method", required=True)
parser.add_argument("--seeds", type=int, nargs="+", required=True)
parser.add_argument("--params", action="append", required=True, help="params files; later win")
parser.add_argument("--data", required=True)
parser.add_argument("--runs", required=True, type=Path, help="data/runs/<dataset>")
parser.add_argument("--unimodal", nargs="*", default=[], help="modalities whose "
                    "unimodal_<modality> runs (same seed) the method starts from")  # fmt: skip
parser.add_argument("--code", nargs="*", default=[], help="the library files (or package "
                    "folders) the run imports: an edit retrains finished seeds instead of "
                    "resuming them")  # fmt: skip
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("train_model")

train = load_params(*args.params)["train"]
for seed in args.seeds:
    log.info("%s / %s: seed %d", args.dataset, args.method, seed)
    train_model(
        dataset_folder=args.data,
        dataset=args.dataset,
        method=args.method,
        seed=seed,
        train_params=method_train_params(train, split_method_name(args.method)[0]),
        out_dir=args.runs / args.method / f"seed{seed}",
        unimodal_runs={m: args.runs / f"unimodal_{m}" / f"seed{seed}" for m in args.unimodal},
        code_files=args.code,
    )
