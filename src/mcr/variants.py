"""Method variants: a registered method run under its own name with some params changed.

The ablations are variants (MCR with the independent game, without L_Con, with noise instead of
permutations, ...): each one is a run of its own -- its own folder, metrics row and report
line -- next to the method it varies, on the datasets it names. ``train.variants`` in
``params/train.yaml``::

    mcr_pre_game_independent:
      method: mcr_pre                           # the registered method it varies
      datasets: ["synthetic_paper_r*", mfeat2]  # dataset names or shell patterns
      set: {game: independent}                  # params over the method's own block

A variant's params are the method's block (``train.methods.<method>``, then the dataset
regime's block for that method), then ``set``: what it sets wins. Torch-free: the Snakemake DAG
lays variants out with the same code the jobs read them with.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcr.config import ConfigError
from mcr.run_names import UNIMODAL

#: A variant name is a run name: a folder and a Snakemake wildcard value.
NAME = re.compile(r"^[a-z0-9_]+$")
KEYS = ("method", "datasets", "set")


@dataclass(frozen=True)
class Variant:
    """One ``train.variants`` entry."""

    name: str
    method: str
    datasets: tuple[str, ...]
    set: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, dataset: str) -> bool:
        """Whether the variant runs on ``dataset`` (an exact name or a matching pattern)."""
        return any(dataset == p or fnmatch.fnmatchcase(dataset, p) for p in self.datasets)


def parse_variants(
    variants: Mapping[str, Any] | None, methods: Mapping[str, Any] | None = None
) -> dict[str, Variant]:
    """The ``train.variants`` section, checked; ``methods`` is ``train.methods`` (a variant
    may not take the name of a configured method).

    Raises:
        ConfigError: naming the variant and key, with what was expected.
    """
    parsed = {}
    for name, block in (variants or {}).items():
        where = f"train.variants.{name}"
        if not NAME.match(str(name)):
            raise ConfigError(f"{where}: a variant name is lower-case letters, digits and _")
        if name in (methods or {}) or name.startswith(f"{UNIMODAL}_"):
            raise ConfigError(f"{where}: the name is taken by a method's runs; choose another")
        if not isinstance(block, Mapping):
            raise ConfigError(f"{where}: expected a mapping with keys {', '.join(KEYS)}")
        unknown = sorted(set(block) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected {', '.join(KEYS)})")
        method = block.get("method")
        if not isinstance(method, str) or not method:
            raise ConfigError(f"{where}.method: expected the name of a registered method")
        if method == UNIMODAL or method in (variants or {}):
            raise ConfigError(
                f"{where}.method: {method!r} cannot be varied (expected a multimodal method, "
                "not unimodal or another variant)"
            )
        datasets = block.get("datasets")
        if isinstance(datasets, str):
            datasets = [datasets]
        if not datasets or not all(isinstance(d, str) and d for d in datasets):
            raise ConfigError(f"{where}.datasets: expected a list of dataset names or patterns")
        settings = block.get("set") or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{where}.set: expected a mapping of {method} params")
        parsed[name] = Variant(name, method, tuple(datasets), dict(settings))
    return parsed
