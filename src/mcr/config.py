"""Typed configuration: frozen dataclasses built from plain mappings (parsed YAML).

Every params block ends up in a frozen dataclass through :func:`from_mapping`, which is the only
place a mapping key is checked: an unknown key, a missing required key, a value of the wrong type
or out of its declared range fails with one :class:`ConfigError` naming the key path and what was
expected. Library code only ever sees the dataclasses.

A field declared with :func:`param` carries its description, the source of its default and its
range as metadata. That declaration is the single place a setting is written: the params schema
(``workflow/tools/method_schema.py``) and ``mcr params <method>`` are generated from it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

#: Range keywords of :func:`param`, with the comparison each one asserts.
BOUNDS: dict[str, tuple[str, Any]] = {
    "ge": (">=", lambda v, b: v >= b),
    "gt": (">", lambda v, b: v > b),
    "le": ("<=", lambda v, b: v <= b),
    "lt": ("<", lambda v, b: v < b),
}


class ConfigError(ValueError):
    """A params value or key is invalid; the message names where and what was expected."""


def param(
    default: Any,
    doc: str,
    *,
    source: str = "",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A config field with its description, the source of its default and its range.

    Args:
        default: the value a params block that leaves the key out gets (immutable: use tuples).
        doc: one line saying what the setting does (the schema description, ``mcr params``).
        source: where the default comes from (paper, official code, MCR run.sh, ours, ...).
        ge, gt, le, lt: bounds checked by :func:`from_mapping`; on a tuple, for every item.
    """
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    metadata = {"doc": doc, "source": source, "bounds": bounds}
    return dataclasses.field(default=default, metadata=metadata)


def check_bounds(obj: Any, where: str = "") -> None:
    """Raise :class:`ConfigError` for the first field of ``obj`` outside its declared range."""
    prefix = f"{where}: " if where else ""
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get("bounds") or {}
        value = getattr(obj, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for key, bound in bounds.items():
            symbol, holds = BOUNDS[key]
            if not all(holds(v, bound) for v in items):
                shown = list(value) if isinstance(value, tuple) else value
                raise ConfigError(f"{prefix}{f.name}={shown!r}: expected {symbol} {bound:g}")


def _check_value(value: Any, annotation: Any, where: str) -> Any:
    """Check (and lightly coerce: int -> float, list -> tuple) one value against its type hint."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check_value(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not match any of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{where}: {value!r} is not one of {allowed}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        return tuple(_check_value(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _check_value(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, where)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config type {annotation!r} at {where} is not supported")  # programming error


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``mapping``; keys missing from the mapping take the defaults.

    Raises:
        ConfigError: unknown key, missing required key, or a value of the wrong type.
    """
    mapping = {} if mapping is None else mapping
    prefix = f"{where}." if where else ""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields))
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; valid keys: {valid}")
    values = {}
    for name, f in fields.items():
        if name in mapping:
            values[name] = _check_value(mapping[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: required key is missing")
    try:
        obj = cls(**values)
    except ConfigError:
        raise
    except ValueError as exc:  # __post_init__ checks (across fields)
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None
    check_bounds(obj, where or cls.__name__)
    return obj


def to_mapping(obj: Any) -> dict[str, Any]:
    """Plain-data (YAML/JSON-safe) form of a config dataclass; tuples become lists."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


class ParamsLoader(yaml.SafeLoader):
    """YAML as a user writes numbers: ``1e-3`` is a float (YAML 1.1, PyYAML's default, reads
    it as the string ``'1e-3'`` unless it has a dot: ``1.0e-3``)."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

#: The sections a params file may hold (``params/<section>.yaml``).
SECTIONS = ("data", "train", "report", "tracking")


def parse_yaml(text: str) -> Any:
    """YAML text with :class:`ParamsLoader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=ParamsLoader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``not valid YAML at line 3, column 9: did not find expected ',' or ']'``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def check_sections(params: Mapping[str, Any], where: str) -> None:
    """Refuse a top-level key that is not a params section (``trian:``), naming the valid ones."""
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key {unknown[0]!r} (expected {', '.join(SECTIONS)})"
        )


def load_params(*paths: str | Path) -> dict[str, Any]:
    """Read and deep-merge YAML params files (later files win), failing clearly on bad YAML,
    on a top-level key that is not a section, and on a file that is not a mapping."""
    merged: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: params file not found")
        try:
            content = parse_yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: {yaml_problem(exc)}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        check_sections(content, str(path))
        merged = deep_merge(merged, content)
    return merged


def dataset_override(overrides: Mapping[str, Any], dataset: str) -> tuple[str | None, Any]:
    """The entry of ``overrides`` for ``dataset``: its exact name, else the first key that is a
    shell-style pattern matching it (``synthetic_paper_r*`` covers a whole sweep family).
    Returns ``(key, value)``, or ``(None, None)`` when nothing matches."""
    import fnmatch

    if dataset in overrides:
        return dataset, overrides[dataset]
    for key, value in overrides.items():
        if fnmatch.fnmatchcase(dataset, key):
            return key, value
    return None, None


def set_dotted(tree: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (VALUE parsed as YAML) to a nested dict, creating levels as needed:
    the ``--train``/``--data`` overrides of the calibration tools."""
    key, _, value = assignment.partition("=")
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = parse_yaml(value)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values in ``override`` win, nested mappings are merged."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
