"""The synthetic generator: determinism, group fractions, where the label signal lives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcr.data.synthetic import (
    SyntheticConfig,
    bayes_optimal_accuracy,
    bayes_optimal_predictions,
    generate,
)


def class_mean_spread(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spread of class-conditional means: ~0 when x carries no label information."""
    means = torch.stack([x[y == c].mean(0) for c in y.unique()])
    return float((means - means.mean(0)).norm(dim=1).mean())


def nearest_mean_accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fit class means on even rows, classify odd rows: chance (0.2) without label signal."""
    fit_x, fit_y, test_x, test_y = x[::2], y[::2], x[1::2], y[1::2]
    means = torch.stack([fit_x[fit_y == c].mean(0) for c in range(5)])
    return float((torch.cdist(test_x, means).argmin(1) == test_y).float().mean())


def test_deterministic_in_seed_and_splits_disjoint_and_stratified() -> None:
    a, b = generate(SyntheticConfig(num_samples=500)), generate(SyntheticConfig(num_samples=500))
    c = generate(SyntheticConfig(num_samples=500, seed=1))
    assert torch.equal(a.train.inputs["m1"], b.train.inputs["m1"])
    assert not torch.equal(a.train.inputs["m1"], c.train.inputs["m1"])
    ids = [set(s.sample_ids) for s in (a.train, a.val, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 500
    for split, fraction in zip((a.train, a.val, a.test), (0.7, 0.15, 0.15), strict=True):
        assert len(split) == pytest.approx(500 * fraction, abs=5)


def test_group_fractions_follow_the_ratio() -> None:
    config = SyntheticConfig(num_samples=20_000, u1_to_s_ratio=2.0)
    assert config.group_probabilities() == pytest.approx({"S": 0.3, "U1": 0.6, "U2": 0.1})
    ds = generate(config)
    groups = np.concatenate([s.annotations["info_group"] for s in (ds.train, ds.val, ds.test)])
    for g, p in config.group_probabilities().items():
        assert (groups == g).mean() == pytest.approx(p, abs=0.015)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_label_signal_only_in_carrying_modalities(num_modalities: int) -> None:
    ds = generate(SyntheticConfig(num_samples=12_000, num_modalities=num_modalities))
    split = ds.train
    groups = split.annotations["info_group"]
    for m_index, m in enumerate(ds.info.modalities):
        x, y = split.inputs[m], split.labels
        own = groups == f"U{m_index + 1}"
        other = (groups != "S") & ~own
        carrying = torch.from_numpy((groups == "S") | own)
        silent = torch.from_numpy(other)
        assert nearest_mean_accuracy(x[carrying], y[carrying]) > 0.55
        assert nearest_mean_accuracy(x[silent], y[silent]) < 0.3  # chance is 0.2


def test_signal_scale_weakens_one_modality() -> None:
    ds = generate(SyntheticConfig(num_samples=6000, signal_scale=(1.0, 0.25)))
    s = torch.from_numpy(ds.train.annotations["info_group"] == "S")
    y = ds.train.labels[s]
    strong = class_mean_spread(ds.train.inputs["m1"][s], y)
    weak = class_mean_spread(ds.train.inputs["m2"][s], y)
    assert weak < 0.4 * strong


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 0.904), (1.0, 0.810), (4.0, 0.771)])
def test_bayes_classifier_reaches_the_documented_optimum(ratio, expected):
    """docs/datasets.md §3 gives the Bayes-optimal accuracy of the default generator from an
    independent Monte-Carlo computation (200k draws); the classifier must reproduce it."""
    config = SyntheticConfig(
        u1_to_s_ratio=ratio, num_samples=60_000, split_fractions=(0.1, 0.1, 0.8)
    )
    test = generate(config).test
    predictions = bayes_optimal_predictions(config, test.inputs)
    assert (predictions == test.labels.numpy()).mean() == pytest.approx(expected, abs=0.006)


def test_bayes_classifier_ignores_a_modality_without_label_signal():
    config = SyntheticConfig(signal_scale=(1.0, 0.0), num_samples=2_000)
    test = generate(config).test
    noise = {"m1": test.inputs["m1"], "m2": torch.randn_like(test.inputs["m2"])}
    assert (
        bayes_optimal_predictions(config, test.inputs) == bayes_optimal_predictions(config, noise)
    ).all()
    assert bayes_optimal_accuracy(config) == pytest.approx(
        float((bayes_optimal_predictions(config, test.inputs) == test.labels.numpy()).mean())
    )


def test_per_modality_dims_and_uniform_maps_keep_the_bayes_optimum():
    """FactorCL's construction (A_m with U[0, 1] entries) at the authors' dims (100, 10): the
    observations change, the latent problem does not, so the ceiling is the documented one."""
    from mcr.data.synthetic import _draw_maps

    config = SyntheticConfig(
        u1_to_s_ratio=1.0, num_samples=60_000, split_fractions=(0.1, 0.1, 0.8),
        observed_dims=(100, 10), projection="uniform",
    )  # fmt: skip
    data = generate(config)
    assert data.info.shapes == {"m1": (100,), "m2": (10,)}
    assert data.test.inputs["m2"].shape[1] == 10
    maps = _draw_maps(config, np.random.default_rng(config.seed))
    assert [a.shape for a in maps] == [(100, 10), (10, 10)]
    assert all(a.min() >= 0 and a.max() <= 1 for a in maps)
    predictions = bayes_optimal_predictions(config, data.test.inputs)
    assert (predictions == data.test.labels.numpy()).mean() == pytest.approx(0.810, abs=0.006)


def test_dims_below_the_latent_dim_or_unknown_projections_are_refused():
    with pytest.raises(ValueError, match="observed dimension 5 < latent_dim=10"):
        SyntheticConfig(observed_dims=(100, 5))
    with pytest.raises(ValueError, match="expected 2 values"):
        SyntheticConfig(observed_dims=(100,))
    with pytest.raises(ValueError, match="projection='sparse'"):
        SyntheticConfig(projection="sparse")
