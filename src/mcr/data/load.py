"""Resolve a dataset source: a registered name (generated from params) or a contract folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcr.config import ConfigError, from_mapping
from mcr.data.dataset import MultimodalDataset
from mcr.data.registry import DATASETS


def dataset_config(name: str, data_params: Mapping[str, Any] | None = None) -> Any:
    """The typed config of the registered dataset ``name``, from its block in ``data_params``."""
    builder = DATASETS.get(name)
    return from_mapping(builder.Config, (data_params or {}).get(name), f"data.{name}")


def load_dataset(source: str, data_params: Mapping[str, Any] | None = None) -> MultimodalDataset:
    """``source`` is a registered dataset name (its block in ``data_params`` configures it) or
    the path of a folder with ``train/val/test.parquet`` (the Parquet contract).

    A generator's output is returned as built: frozen pretrained features its params ask for
    (``avdigits`` with ``image_features: mobilenet_v2``) are a later stage, run by
    :func:`mcr.features.load_dataset` (same arguments), because data never imports models.
    """
    data_params = data_params or {}
    if source in DATASETS:
        return DATASETS.get(source).build(dataset_config(source, data_params))
    if Path(source).is_dir():
        from mcr.data.contract import read_dataset

        return read_dataset(source)
    raise ConfigError(
        f"dataset {source!r} is neither a registered name ({', '.join(DATASETS.names())}) "
        "nor a folder holding train.parquet, val.parquet and test.parquet"
    )
