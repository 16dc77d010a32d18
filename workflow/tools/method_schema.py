"""Write ``workflow/schemas/methods.schema.json`` from the method declarations.

    python workflow/tools/method_schema.py            # (re)write it
    python workflow/tools/method_schema.py --check    # exit 1 if it is stale (CI)

Each method is declared once, in its module: the ``Config`` dataclass (every key with default,
description, source and range) and the class attributes saying what it refuses and consumes.
This tool turns them into the JSON schema of ``train.methods`` (``train.schema.yaml`` refers to
it), with the DAG's facts under ``x-mcr`` and a digest of the sources, so the Snakemake DAG reads
every method without importing torch (``mcr.workflow.catalog``). The DAG regenerates a stale file
by itself; CI checks that the committed one is current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mcr.io import atomic_write
from mcr.methods.declaration import methods_schema
from mcr.workflow.catalog import CATALOG_FILE, REGENERATE, declaration_digest

COMMENT = (
    f"Generated from the method declarations (src/mcr/methods) by {REGENERATE} -- do not "
    "edit. A method's params block in params/train.yaml lists only the keys it changes; the "
    "full, commented block with every default: mcr params <method>."
)


def render() -> str:
    """JSON, not YAML: Snakemake parses a JSON schema in milliseconds, YAML in a tenth of a
    second, on every DAG build."""
    schema = {"$comment": COMMENT, **methods_schema(declaration_digest())}
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--out", type=Path, default=CATALOG_FILE)
    args = parser.parse_args()
    text = render()
    current = args.out.read_text() if args.out.is_file() else ""
    if args.check:
        if current != text:
            print(f"{args.out} is STALE: run {REGENERATE} and commit it")
            return 1
        print(f"{args.out} is up to date")
        return 0
    if current != text:
        with atomic_write(args.out) as f:  # a DAG build may read it at any moment
            f.write(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
