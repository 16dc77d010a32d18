"""Run names: a run is named after its method, except the unimodal ones, ``unimodal_<modality>``.

Torch-free on purpose: the method registry and the Snakemake DAG (which must build without
importing torch) parse run names with the same function.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

#: The registry name of the one-modality baseline.
UNIMODAL = "unimodal"
#: ``unimodal_<modality>`` names the ``unimodal`` method trained on one modality.
UNIMODAL_PREFIX = "unimodal_"


def split_run_name(name: str, registered: Container[str]) -> tuple[str, dict[str, Any]]:
    """Method key and config overrides of a run name (``unimodal_m1`` -> unimodal, m1).

    A registered method whose own name starts with ``unimodal_`` keeps its name.
    """
    if name.startswith(UNIMODAL_PREFIX) and name not in registered:
        return UNIMODAL, {"modality": name[len(UNIMODAL_PREFIX) :]}
    return name, {}


def unimodal_run_name(modality: str) -> str:
    """The run name of the unimodal baseline on ``modality``."""
    return f"{UNIMODAL_PREFIX}{modality}"
