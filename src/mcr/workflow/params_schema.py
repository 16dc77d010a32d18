"""The params files checked against ``workflow/schemas``: every violated key, one line each.

Snakemake's own ``validate`` stops at the first error and prints it with the whole schema
fragment; a user fixing a params file wants the list of keys that are wrong and why. The DAG
runs this first, then Snakemake's ``validate`` (which fills in the declared defaults).
Torch-free, like the rest of the DAG's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

#: The generated schema the train section refers to (``$ref: methods.schema.json``).
METHODS_SCHEMA = "methods.schema.json"


def schema_errors(data: Any, section: str, schemas: Path) -> list[str]:
    """``<section>.<key path>: <what is wrong>`` for every violation of the section's schema."""
    import jsonschema
    import referencing

    schema = yaml.safe_load((schemas / f"{section}.schema.yaml").read_text())
    methods = json.loads((schemas / METHODS_SCHEMA).read_text())
    registry = referencing.Registry().with_resource(
        METHODS_SCHEMA, referencing.Resource.from_contents(methods)
    )
    validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
    lines = []
    for error in validator.iter_errors(data):
        path = ".".join(str(p) for p in (section, *error.absolute_path))
        lines.append(f"{path}: {error.message}")
    return sorted(set(lines))
