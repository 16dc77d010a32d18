"""Rule make_dataset: write one pipeline dataset into the Parquet contract.

Inputs: the ``data`` params. Output: ``<out>/{train,val,test}.parquet``.
"""

import argparse

from mcr.config import load_params
from mcr.workflow.layout import pipeline_datasets
from mcr.workflow.stages import make_dataset

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", required=True)
parser.add_argument("--params", action="append", required=True, help="params files; later win")
parser.add_argument("--out", required=True)
args = parser.parse_args()

sources = pipeline_datasets(load_params(*args.params)["data"])
make_dataset(sources[args.dataset], args.out)
print(f"wrote {args.dataset} to {args.out}")
