"""The paper's synthetic multimodal task (§4.1, Fig. 1), generalised to M >= 2 modalities.

Each sample carries its label in *all* modalities (group ``S``, shared information) or in exactly
one modality ``m`` (group ``U{m}``, unique information; every other modality is pure noise):

    latent_m = N_m + mu_y   if modality m carries the label, else N_m,    N_m ~ N(0, I_d)
    x_m      = A_m latent_m                                               (fixed random A_m)

with ``mu_y = signal * e_y`` (the first C axes of R^d). Sweeping the ratio U1/S at fixed U2 makes
modality 1 increasingly dominant, which is the paper's imbalance axis. The values not given by
the paper (dimensions, n, signal scale, sweep) follow ``docs/datasets.md`` §3; there the
Bayes-optimal accuracies are 0.90 -> 0.77 fused and ~0.73 for modality 1 alone, so no setting is
near ceiling. Generation is a pure function of the config (including ``seed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split
from mcr.data.registry import DATASETS
from mcr.data.splits import check_split_fractions, stratified_split


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator parameters; defaults are ``docs/datasets.md`` §3."""

    num_modalities: int = 2  # M >= 2; modalities are named m1..mM
    num_classes: int = 5  # paper: 5
    latent_dim: int = 10  # d, must be >= num_classes (label vectors are coordinate axes)
    observed_dim: int = 100  # D per modality
    observed_dims: tuple[int, ...] = ()  # optional D per modality (overrides observed_dim), e.g.
    # the authors' (100, 10); each must be >= latent_dim so that A_m stays injective
    projection: str = "gaussian"  # A_m entries: "gaussian" N(0, 1/d) (ours) or "uniform" U[0, 1]
    # (FactorCL's fixed random linear maps, the construction the paper cites)
    signal: float = 2.0  # label-vector scale s; 3.0 is near ceiling, 1.5 is hard
    signal_scale: tuple[float, ...] = ()  # optional per-modality multiplier of s (ours; empty
    # = 1 for all): a second imbalance axis, a weak modality whose label signal is fainter
    num_samples: int = 10_000
    u1_to_s_ratio: float = 1.0  # imbalance axis: fraction(U1) / fraction(S)
    unique_fraction_others: float = 0.1  # fraction of U2..UM samples, each (paper: U2 fixed)
    split_fractions: tuple[float, ...] = (0.70, 0.15, 0.15)  # train/val/test, stratified by label
    seed: int = 0  # data seed: the maps A_m, the samples and the split

    def __post_init__(self) -> None:
        if self.num_modalities < 2:
            raise ValueError(f"num_modalities={self.num_modalities}: expected >= 2")
        if self.latent_dim < self.num_classes:
            raise ValueError(
                f"latent_dim={self.latent_dim} must be >= num_classes={self.num_classes}"
            )
        if self.u1_to_s_ratio < 0:
            raise ValueError(f"u1_to_s_ratio={self.u1_to_s_ratio}: expected >= 0")
        if not 0 <= self.unique_fraction_others * (self.num_modalities - 1) < 1:
            raise ValueError(
                f"unique_fraction_others={self.unique_fraction_others}: the U2..UM fractions "
                "must sum to less than 1"
            )
        if self.signal_scale and len(self.signal_scale) != self.num_modalities:
            raise ValueError(
                f"signal_scale={self.signal_scale}: expected {self.num_modalities} values or none"
            )
        if self.observed_dims and len(self.observed_dims) != self.num_modalities:
            raise ValueError(
                f"observed_dims={self.observed_dims}: expected {self.num_modalities} values or none"
            )
        small = [d for d in self.dims if d < self.latent_dim]
        if small:
            raise ValueError(
                f"observed dimension {small[0]} < latent_dim={self.latent_dim}: the map A_m "
                "would not be injective (and the Bayes classifier not computable)"
            )
        if self.projection not in ("gaussian", "uniform"):
            raise ValueError(f"projection={self.projection!r}: expected 'gaussian' or 'uniform'")
        check_split_fractions(self.split_fractions)

    @property
    def dims(self) -> tuple[int, ...]:
        """The observed dimension of each modality."""
        return tuple(self.observed_dims) or (self.observed_dim,) * self.num_modalities

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(f"m{i + 1}" for i in range(self.num_modalities))

    def group_probabilities(self) -> dict[str, float]:
        """Probability of each information group: ``S``, ``U1`` ... ``UM``."""
        others = self.unique_fraction_others * (self.num_modalities - 1)
        rest = 1.0 - others
        r = self.u1_to_s_ratio
        probs = {"S": rest / (1 + r), "U1": rest * r / (1 + r)}
        for m in range(2, self.num_modalities + 1):
            probs[f"U{m}"] = self.unique_fraction_others
        return probs


def _draw_maps(config: SyntheticConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """The fixed maps ``A_m`` (``D x d``): the first draws of the data seed's generator."""
    d = config.latent_dim
    if config.projection == "uniform":
        return [rng.uniform(0.0, 1.0, (big_d, d)) for big_d in config.dims]
    return [rng.standard_normal((big_d, d)) / np.sqrt(d) for big_d in config.dims]


def generate(config: SyntheticConfig) -> MultimodalDataset:
    """Draw the dataset described by ``config`` (deterministic in ``config.seed``)."""
    rng = np.random.default_rng(config.seed)
    c, d, n = config.num_classes, config.latent_dim, config.num_samples
    maps = _draw_maps(config, rng)
    probs = config.group_probabilities()
    group_names = np.array(list(probs))
    groups = rng.choice(len(group_names), size=n, p=np.array(list(probs.values())))
    labels = rng.integers(0, c, size=n)
    label_vectors = np.zeros((n, d))
    label_vectors[np.arange(n), labels] = config.signal
    inputs = {}
    scales = config.signal_scale or (1.0,) * config.num_modalities
    for m, (name, a) in enumerate(zip(config.modalities, maps, strict=True)):
        carries = (groups == 0) | (groups == m + 1)  # group 0 is S, group m+1 is U{m+1}
        signal = label_vectors * (scales[m] * carries)[:, None]
        latent = rng.standard_normal((n, d)) + signal
        inputs[name] = (latent @ a.T).astype(np.float32)
    info_group = group_names[groups]
    sample_ids = np.array([f"syn-{i:06d}" for i in range(n)])
    info = DatasetInfo(
        name="synthetic",
        task="classification",
        num_classes=c,
        modalities=config.modalities,
        shapes={m: (dim,) for m, dim in zip(config.modalities, config.dims, strict=True)},
    )
    splits = {}
    for split, idx in zip(
        SPLITS, stratified_split(labels, config.split_fractions, rng), strict=True
    ):
        splits[split] = Split.from_arrays(
            split,
            inputs={m: np.ascontiguousarray(x[idx]) for m, x in inputs.items()},
            labels=labels[idx].astype(np.int64),
            sample_ids=sample_ids[idx],
            annotations={"info_group": info_group[idx]},
        )
    return MultimodalDataset(info=info, **splits)


def bayes_optimal_predictions(config: SyntheticConfig, inputs: Mapping[str, Any]) -> np.ndarray:
    """The Bayes classifier of the generator: ``argmax_y p(y | x_1..x_M)``, knowing every param.

    It is the ceiling no trained model can beat in expectation, so the report can say how far
    each method is from it. ``A_m`` has full column rank, so ``latent_m = pinv(A_m) x_m`` exactly
    (up to float32 rounding). With uniform labels and unit-variance noise,
    ``log p(y, g | latents) = log p(g) + sum over the modalities g gives the label of
    (s_m l_m[y] - s_m^2 / 2) + const``, where ``s_m`` is modality m's label-vector scale, and
    ``p(y | latents)`` sums that over the groups ``g``.
    """
    maps = _draw_maps(config, np.random.default_rng(config.seed))
    scales = config.signal_scale or (1.0,) * config.num_modalities
    probs = config.group_probabilities()
    latents = [
        np.asarray(inputs[name], dtype=np.float64) @ np.linalg.pinv(a).T
        for name, a in zip(config.modalities, maps, strict=True)
    ]
    c = config.num_classes
    log_joint = []  # per group: (n, C)
    for g, (group, p) in enumerate(probs.items()):
        if p <= 0:
            continue
        score = np.full((len(latents[0]), c), np.log(p))
        for m, latent in enumerate(latents):
            if group == "S" or g == m + 1:  # this group's samples carry the label in modality m
                s = config.signal * scales[m]
                score += s * latent[:, :c] - s * s / 2
        log_joint.append(score)
    return np.logaddexp.reduce(np.stack(log_joint), axis=0).argmax(axis=1)


def bayes_optimal_accuracy(config: SyntheticConfig, split: str = "test") -> float:
    """Accuracy of :func:`bayes_optimal_predictions` on a split of the dataset ``config`` draws
    (the same rows the pipeline's models are tested on: generation is deterministic)."""
    part = generate(config).split(split)
    predictions = bayes_optimal_predictions(config, part.inputs)
    return float((predictions == part.labels.numpy()).mean())


@DATASETS.register("synthetic")
class SyntheticDataset:
    """Registry entry for :func:`generate`."""

    Config = SyntheticConfig

    @staticmethod
    def raw_sources(config: SyntheticConfig) -> tuple[str, ...]:
        return ()  # generated, nothing to extract

    @staticmethod
    def build(config: SyntheticConfig) -> MultimodalDataset:
        return generate(config)
