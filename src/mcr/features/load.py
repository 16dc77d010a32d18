"""Load a dataset with the features its params ask for: the generator, then the feature stage.

The entry point for callers above models (the pipeline's ``make_dataset``, the CLI, tools):
:func:`mcr.data.load.load_dataset` builds what data can build alone, and a registered
generator's own params decide whether :func:`~mcr.features.pretrained.with_image_features`
runs after it. A contract folder already holds its final features and is read as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcr.data import load as data_load
from mcr.data.dataset import MultimodalDataset
from mcr.data.registry import DATASETS
from mcr.features.pretrained import with_image_features


def load_dataset(source: str, data_params: Mapping[str, Any] | None = None) -> MultimodalDataset:
    """Like :func:`mcr.data.load.load_dataset` (same arguments, same errors), plus the frozen
    pretrained features a registered generator's params ask for."""
    dataset = data_load.load_dataset(source, data_params)
    if source in DATASETS:
        dataset = with_image_features(dataset, data_load.dataset_config(source, data_params))
    return dataset
