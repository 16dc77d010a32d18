"""What a method's declaration (its ``Config`` and class attributes) says, in generated forms.

A method is written once, in its module. From that declaration this module derives what users
never edit by hand:

* the JSON schema of its params block (``workflow/schemas/methods.schema.json``, written by
  ``workflow/tools/method_schema.py``), with the facts the Snakemake DAG needs -- what the method
  refuses and whether it consumes unimodal runs -- under ``x-mcr``, so the DAG reads them without
  importing torch;
* the full, commented params block that ``mcr params <method>`` prints.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from typing import Any

import yaml

from mcr.methods.base import Method
from mcr.methods.registry import METHODS
from mcr.run_names import UNIMODAL

#: JSON-schema keywords of :func:`mcr.config.param` bounds.
BOUND_KEYWORDS = {
    "ge": "minimum",
    "gt": "exclusiveMinimum",
    "le": "maximum",
    "lt": "exclusiveMaximum",
}
#: Fields the pipeline sets from the run name, never from a params block.
FROM_RUN_NAME = {UNIMODAL: {"modality"}}
TRAIN_OVERRIDES = {
    "type": "object",
    "description": "Per-method overrides of train.common (same keys).",
}


def type_schema(annotation: Any) -> dict[str, Any]:
    """JSON schema of a Config field type (the subset ``mcr.config.from_mapping`` accepts)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(a) for a in args]}
    if origin in (tuple, list):
        return {"type": "array", "items": type_schema(args[0]) if args else {}}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    raise TypeError(f"no JSON schema for config type {annotation!r}")  # programming error


def config_fields(name: str) -> list[tuple[dataclasses.Field, Any]]:
    """The user-settable fields of method ``name``'s Config, with their resolved types."""
    config = METHODS.get(name).Config
    if not dataclasses.is_dataclass(config):
        return []
    hints = typing.get_type_hints(config)
    hidden = FROM_RUN_NAME.get(name, set())
    return [(f, hints[f.name]) for f in dataclasses.fields(config) if f.name not in hidden]


def field_description(f: dataclasses.Field) -> str:
    doc = f.metadata.get("doc", "")
    source = f.metadata.get("source", "")
    return f"{doc} (default: {source})" if source else doc


def plain_default(f: dataclasses.Field) -> Any:
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return list(value) if isinstance(value, tuple) else value


def summary(cls: type[Method]) -> str:
    """First line of the method class's own docstring, else of its module's."""
    doc = cls.__dict__.get("__doc__") or sys.modules[cls.__module__].__doc__ or cls.__name__
    return doc.strip().splitlines()[0]


def method_facts(cls: type[Method]) -> dict[str, Any]:
    """What the DAG needs to know of a method, as plain data (read without torch)."""
    return {
        "supported_tasks": list(cls.supported_tasks),
        "min_modalities": cls.min_modalities,
        "max_modalities": cls.max_modalities,
        "unimodal_runs": cls.unimodal_runs,
    }


def method_block_schema(name: str) -> dict[str, Any]:
    """JSON schema of the params block of method ``name`` (keys, types, ranges, defaults)."""
    cls = METHODS.get(name)
    properties: dict[str, Any] = {"train": dict(TRAIN_OVERRIDES)}
    for f, annotation in config_fields(name):
        prop = type_schema(annotation)
        target = prop["items"] if prop.get("type") == "array" else prop
        for key, bound in (f.metadata.get("bounds") or {}).items():
            target[BOUND_KEYWORDS[key]] = bound
        prop["default"] = plain_default(f)
        prop["description"] = field_description(f)
        properties[f.name] = prop
    return {
        "description": summary(cls),
        "type": ["object", "null"],
        "additionalProperties": False,
        "x-mcr": method_facts(cls),
        "properties": properties,
    }


def methods_schema(digest: str) -> dict[str, Any]:
    """The schema of ``train.methods``: every registered method's block, and ``digest`` (of the
    sources it was generated from) so a stale copy is detected without importing torch."""
    names = METHODS.names()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "The methods the pipeline runs (registry names), each with its params "
        "block; a block lists only the keys it changes.",
        "x-mcr-digest": digest,
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"enum": names},
        "properties": {name: method_block_schema(name) for name in names},
    }


def params_block(name: str) -> str:
    """Method ``name``'s full params block as commented YAML, every key at its default."""
    cls = METHODS.get(name)
    head = f"{name}:" if config_fields(name) else f"{name}: {{}}"
    lines = [f"{head}  # {summary(cls)}"]
    for f, _ in config_fields(name):
        value = yaml.safe_dump(plain_default(f), default_flow_style=True).strip()
        value = value.removesuffix("\n...").strip()
        bounds = f.metadata.get("bounds") or {}
        symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        limits = ", ".join(f"{symbols[k]} {v:g}" for k, v in bounds.items())
        comment = field_description(f) + (f" [{limits}]" if limits else "")
        lines.append(f"  {f.name}: {value}  # {comment}")
    facts = method_facts(cls)
    refuses = [
        f"tasks: {', '.join(facts['supported_tasks'])}",
        f"modalities >= {cls.min_modalities}",
    ]
    if cls.max_modalities is not None:
        refuses.append(f"modalities <= {cls.max_modalities}")
    lines.append(f"  # runs on: {'; '.join(refuses)}")
    if cls.unimodal_runs:
        when = "always" if cls.unimodal_runs is True else f"when {cls.unimodal_runs} is true"
        lines.append(f"  # consumes the unimodal_<m> runs of the same seed ({when})")
    return "\n".join(lines) + "\n"
