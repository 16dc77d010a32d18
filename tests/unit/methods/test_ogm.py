"""OGM / OGM-GE: k <= 1, only on the dominant modality's encoder, hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.ogm import ogm_coefficients
from tests.conftest import build_method, first_batch, gradients


def test_coefficients_hand_computed() -> None:
    scores = {"a": torch.tensor(3.0), "v": torch.tensor(1.0)}
    k = ogm_coefficients(scores, alpha=0.5)
    assert k["v"] == 1.0
    assert k["a"] == pytest.approx(1 - math.tanh(0.5 * 3.0))
    paper = ogm_coefficients(scores, alpha=0.5, formula="paper")
    assert paper["a"] == pytest.approx(1 - math.tanh(0.5 * 2.0))
    balanced = ogm_coefficients({"a": torch.tensor(2.0), "v": torch.tensor(2.0)}, alpha=3.0)
    assert balanced == {"a": 1.0, "v": 1.0}


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0, 10.0])
def test_coefficient_never_exceeds_one(alpha) -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        a, v = torch.rand(2, generator=gen) * 10 + 1e-3
        k = ogm_coefficients({"a": a, "v": v}, alpha)
        assert min(k.values()) >= 0.0 and max(k.values()) <= 1.0
        assert min(k.values()) == 1.0 or k[min(k, key=k.get)] == k["a" if a > v else "v"]


def gradients_around_modulation(method, model, batch):
    """Gradients of one epoch-0 step before and after ``after_backward``."""
    method.on_epoch_start(0, model)
    out = model(batch.inputs)
    method.loss(model, batch, out).total.backward()
    before = gradients(model)
    method.after_backward(model, batch, out)
    return before, gradients(model)


def test_only_the_dominant_encoder_is_scaled(tiny_synthetic) -> None:
    method, model = build_method("ogm", {"alpha": 0.7}, tiny_synthetic)
    before, after = gradients_around_modulation(method, model, first_batch(tiny_synthetic, 64))
    k = method.last_coefficients
    dominant = max(k, key=lambda m: 1 - k[m])
    assert k[dominant] < 1 and all(v == 1.0 for m, v in k.items() if m != dominant)
    for name, g in before.items():
        factor = k[dominant] if name.startswith(f"encoders.{dominant}.") else 1.0
        torch.testing.assert_close(after[name], g * factor)  # fusion head untouched


def test_outside_the_window_nothing_changes(tiny_synthetic) -> None:
    method, model = build_method("ogm", {"modulation_starts": 3}, tiny_synthetic)
    before, after = gradients_around_modulation(method, model, first_batch(tiny_synthetic))
    assert all(torch.equal(before[n], g) for n, g in after.items())


def test_ge_adds_noise_to_every_encoder_tensor(tiny_synthetic) -> None:
    method, model = build_method("ogm_ge", {}, tiny_synthetic)
    before, after = gradients_around_modulation(method, model, first_batch(tiny_synthetic))
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {n for n in before if n.startswith("encoders.")}


def test_three_modalities_are_refused_before_training(tiny_synthetic3) -> None:
    with pytest.raises(ConfigError, match="at most 2 modalities, dataset has 3"):
        create_method("ogm", {}, tiny_synthetic3.info)
