"""Rule train_model: train methods on one dataset, every seed, in one process.

Snakemake runs one method per job; a DVC stage passes a dataset's whole run list, ordered so
that the unimodal runs come before the methods that start from them.

Inputs: the dataset folder, the ``train`` params, unimodal runs where a method needs them.
Outputs, per method and seed: ``<runs>/<method>/seed<s>/best.pt``, ``history.csv``,
``train_summary.json`` (and ``last.pt``). A seed whose run already finished with the same params
is not retrained. With ``tracking.live`` every run also logs to MLflow as it trains.
"""

import argparse
import logging
from pathlib import Path

from mcr.config import load_params
from mcr.tracking import live_tracking_uri, server_problem
from mcr.workflow.catalog import load_catalog
from mcr.workflow.layout import method_train_params, unimodal_inputs
from mcr.workflow.stages import train_model

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--method", nargs="+", required=True, help="run names, trained in order")
parser.add_argument("--seeds", type=int, nargs="+", required=True)
parser.add_argument("--params", action="append", required=True, help="params files; later win")
parser.add_argument("--data", required=True)
parser.add_argument("--runs", required=True, type=Path, help="data/runs/<dataset>")
parser.add_argument("--modalities", nargs="+", required=True, help="the dataset's modalities: "
                    "a method that starts from unimodal runs reads unimodal_<modality> "
                    "(same seed) for each")  # fmt: skip
parser.add_argument("--code", nargs="*", default=[], help="the library files (or package "
                    "folders) the run imports: an edit retrains finished seeds instead of "
                    "resuming them")  # fmt: skip
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("train_model")

params = load_params(*args.params)
train = params["train"]
live_uri = live_tracking_uri((params.get("tracking") or {}).get("live", "auto"))
if live_uri and (problem := server_problem(live_uri)):  # checked once: say it, train anyway
    log.warning("live tracking: %s; training goes on, track_runs will log the runs", problem)
elif live_uri:
    log.info("live tracking to %s", live_uri)
catalog = load_catalog()
for method in args.method:
    unimodal = unimodal_inputs(train, method, tuple(args.modalities), catalog)
    for seed in args.seeds:
        log.info("%s / %s: seed %d", args.dataset, method, seed)
        train_model(
            dataset_folder=args.data,
            dataset=args.dataset,
            method=method,
            seed=seed,
            train_params=method_train_params(train, catalog.split(method)[0]),
            out_dir=args.runs / method / f"seed{seed}",
            unimodal_runs={m: args.runs / f"unimodal_{m}" / f"seed{seed}" for m in unimodal},
            code_files=args.code,
            live_tracking_uri=live_uri,
        )
