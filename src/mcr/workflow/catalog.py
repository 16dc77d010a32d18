"""The method catalog as the Snakemake DAG reads it: generated, torch-free, checked for staleness.

Methods are declared in their modules (``mcr/methods/<name>.py``), which import torch. The DAG
only needs each method's name, defaults, what it refuses and whether it consumes unimodal runs,
so ``workflow/tools/method_schema.py`` writes those into ``workflow/schemas/methods.schema.json``
(the schema of ``train.methods``, facts under ``x-mcr``; JSON, which Snakemake and the DAG parse
in milliseconds). That file records a digest of the
declaring sources; :func:`load_catalog` compares it with the sources on disk, so a method edit
is never read through a stale copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcr
from mcr.config import ConfigError
from mcr.run_names import UNIMODAL, split_run_name

#: Where the generated schema lives, relative to the project root.
CATALOG_FILE = Path("workflow/schemas/methods.schema.json")
#: The command that regenerates it.
REGENERATE = "python workflow/tools/method_schema.py"


class StaleCatalogError(RuntimeError):
    """The generated catalog does not match the method sources on disk."""


def declaration_sources() -> list[Path]:
    """The files a method declaration can live in (every module of ``mcr.methods``, and the
    config and run-name helpers the declarations use)."""
    package = Path(mcr.__file__).parent
    methods = sorted((package / "methods").glob("*.py"))
    return [*methods, package / "config.py", package / "run_names.py"]


def declaration_digest() -> str:
    """sha256 over the declaring sources' package-relative names and contents."""
    package = Path(mcr.__file__).parent
    digest = hashlib.sha256()
    for path in declaration_sources():
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class MethodEntry:
    """One method as the DAG sees it."""

    name: str
    defaults: dict[str, Any]
    supported_tasks: tuple[str, ...]
    min_modalities: int
    max_modalities: int | None
    unimodal_runs: bool | str  # True/False, or the boolean params key that switches it

    def applies(self, task: str, num_modalities: int) -> bool:
        """Whether the method is defined for a dataset of this task and modality count (a
        method that is not -- OGM on three modalities -- is left out of the DAG, not failed)."""
        if task not in self.supported_tasks or num_modalities < self.min_modalities:
            return False
        return self.max_modalities is None or num_modalities <= self.max_modalities

    def uses_unimodal_runs(self, block: Mapping[str, Any] | None) -> bool:
        """Whether runs with params ``block`` start from the unimodal runs (a DAG edge)."""
        if isinstance(self.unimodal_runs, str):
            key = self.unimodal_runs
            return bool((block or {}).get(key, self.defaults[key]))
        return bool(self.unimodal_runs)


class MethodCatalog:
    """Every registered method, by name, read from the generated schema."""

    def __init__(self, entries: Mapping[str, MethodEntry]) -> None:
        self.entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def get(self, name: str) -> MethodEntry:
        """The entry of a method or run name (``unimodal_m1`` -> ``unimodal``)."""
        key = self.split(name)[0]
        if key not in self.entries:
            valid = ", ".join(self.names())
            raise ConfigError(f"unknown method {key!r}; valid names: {valid}")
        return self.entries[key]

    def split(self, name: str) -> tuple[str, dict[str, Any]]:
        return split_run_name(name, self.entries)


def parse_catalog(schema: Mapping[str, Any]) -> MethodCatalog:
    entries = {}
    for name, block in schema["properties"].items():
        facts = block["x-mcr"]
        defaults = {k: p["default"] for k, p in block["properties"].items() if "default" in p}
        entries[name] = MethodEntry(
            name=name,
            defaults=defaults,
            supported_tasks=tuple(facts["supported_tasks"]),
            min_modalities=int(facts["min_modalities"]),
            max_modalities=facts["max_modalities"],
            unimodal_runs=facts["unimodal_runs"],
        )
    if UNIMODAL not in entries:
        raise ConfigError(f"{CATALOG_FILE}: no {UNIMODAL!r} method")
    return MethodCatalog(entries)


def load_catalog(path: str | Path = CATALOG_FILE) -> MethodCatalog:
    """Read the generated catalog.

    Raises:
        StaleCatalogError: the file is missing or was generated from other method sources.
    """
    path = Path(path)
    if not path.is_file():
        raise StaleCatalogError(f"{path} does not exist: run {REGENERATE}")
    schema = json.loads(path.read_text())
    if schema.get("x-mcr-digest") != declaration_digest():
        raise StaleCatalogError(
            f"{path} is out of date with the method sources in src/mcr/methods: run {REGENERATE}"
        )
    return parse_catalog(schema)
