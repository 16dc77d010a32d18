"""Datasets: in-memory containers, the Parquet contract, and registered generators."""

from mcr.data import avdigits, mfeat, synthetic  # noqa: F401  (register the generators)
from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split
from mcr.data.registry import DATASETS

__all__ = ["DATASETS", "SPLITS", "DatasetInfo", "MultimodalDataset", "Split"]
