"""MLB: hand-computed k, k >= 1 for the weak / <= 1 for the strong, exact gradient scaling."""

from __future__ import annotations

import math

import pytest
import torch

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.mlb import mlb_coefficients
from mcr.training import train_run
from tests.conftest import build_method, first_batch, gradients, tiny_run_config


def _floats(k: dict[str, torch.Tensor]) -> dict[str, float]:
    return {m: float(v.detach()) for m, v in k.items()}


def test_coefficients_hand_computed() -> None:
    k = _floats(mlb_coefficients({"a": torch.tensor(3.0), "v": torch.tensor(1.0)}, 0.5, 10.0))
    # a: r = 1/3 (strong, beta 2); v: r = 3 (weak, beta_max 10)
    assert k["a"] == pytest.approx(1 + math.tanh(0.5 * (1 / 3 - 1)))
    assert k["v"] == pytest.approx(1 + 9 * math.tanh(0.5 * 2))
    balanced = _floats(mlb_coefficients({"a": torch.tensor(2.0), "v": torch.tensor(2.0)}, 5, 10))
    assert balanced == {"a": 1.0, "v": 1.0}


def test_coefficients_three_modalities_hand_computed() -> None:
    scores = {"x": torch.tensor(1.0), "y": torch.tensor(2.0), "z": torch.tensor(3.0)}
    k = _floats(mlb_coefficients(scores, alpha=2.0, beta_max=4.0))
    assert k["x"] == pytest.approx(1 + 3 * math.tanh(2.0 * (2.5 - 1)))  # r = 2.5 / 1
    assert k["y"] == pytest.approx(1.0)  # r = 2 / 2 = 1: exactly balanced
    assert k["z"] == pytest.approx(1 + math.tanh(2.0 * (0.5 - 1)))  # r = 1.5 / 3


def test_mcr_code_mode_is_beta_max_two() -> None:
    scores = {"a": torch.tensor(0.7), "v": torch.tensor(5.0)}
    k = _floats(mlb_coefficients(scores, alpha=1.3, beta_max=2.0))
    for m, other in (("a", "v"), ("v", "a")):
        r = float(scores[other] / scores[m])
        assert k[m] == pytest.approx(1 + math.tanh(1.3 * (r - 1)))


@pytest.mark.parametrize("beta_max", [1.0, 2.0, 10.0])
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_weak_is_sped_up_and_strong_slowed_down(beta_max, num_modalities) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        values = torch.rand(num_modalities, generator=gen) * 30 + 1e-3
        scores = {f"m{i}": v for i, v in enumerate(values)}
        k = mlb_coefficients(
            scores, alpha=float(torch.rand(1, generator=gen)) * 3, beta_max=beta_max
        )
        for i, (m, s) in enumerate(scores.items()):
            others = torch.cat([values[:i], values[i + 1 :]]).mean()
            if others > s:  # weak
                assert float(k[m]) >= 1.0
                assert float(k[m]) <= beta_max + 1e-6
            else:
                assert 0.0 < float(k[m]) <= 1.0


def test_loss_is_fused_plus_unimodal_and_logs_k(tiny_synthetic) -> None:
    method, model = build_method("mlb", {"unimodal_weight": 0.3}, tiny_synthetic)
    batch = first_batch(tiny_synthetic, 48)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    ce = torch.nn.functional.cross_entropy
    expected = ce(out.logits, batch.labels) + 0.3 * sum(
        ce(out.unimodal_logits[m], batch.labels) for m in ("m1", "m2")
    )
    torch.testing.assert_close(losses.total, expected)
    assert {"task", "uni[m1]", "uni[m2]", "k[m1]", "k[m2]"} <= set(losses.terms)
    k = method.coefficients(out, batch.labels)
    assert all(torch.equal(losses.terms[f"k[{m}]"], k[m]) for m in k)


def _check_exact_scaling(method, model, batch):
    """Backward, modulate, and check every gradient against ``k`` (returns ``k`` and ``out``)."""
    out = model(batch.inputs)
    method.loss(model, batch, out).total.backward()
    before = gradients(model)
    method.after_backward(model, batch, out)
    after = gradients(model)
    k = _floats(method.last_coefficients)
    assert set(k) == set(model.modalities)
    for name, g in before.items():
        factor = 1.0
        for m in model.modalities:
            if name.startswith((f"encoders.{m}.", f"fusion.weights.{m}.")):
                factor = k[m]
        # unimodal heads h_m and the shared fusion bias keep their gradients
        torch.testing.assert_close(after[name], g * factor)
    return k, out


def test_scales_encoder_and_fused_weights_exactly(tiny_synthetic) -> None:
    method, model = build_method("mlb", {"alpha": 2.0, "beta_max": 10.0}, tiny_synthetic)
    k, _ = _check_exact_scaling(method, model, first_batch(tiny_synthetic, 64))
    assert any(v != 1.0 for v in k.values())  # the test really scaled something
    assert (k["m1"] - 1) * (k["m2"] - 1) <= 0  # one sped up, the other slowed down


def test_three_modalities(tiny_synthetic3) -> None:
    method, model = build_method("mlb", {}, tiny_synthetic3)
    batch = first_batch(tiny_synthetic3, 64)
    k, out = _check_exact_scaling(method, model, batch)
    scores = {  # s_m from the unimodal heads, by hand
        m: torch.softmax(out.unimodal_logits[m].detach(), -1)
        .gather(1, batch.labels.view(-1, 1))
        .sum()
        for m in model.modalities
    }
    expected = mlb_coefficients(scores, 0.5, 10.0)
    assert k == pytest.approx(_floats(expected))


def test_regression(tiny_regression) -> None:
    method, model = build_method("mlb", {"alpha": 1.0}, tiny_regression)
    batch = first_batch(tiny_regression, 40)
    k, out = _check_exact_scaling(method, model, batch)
    scores = {  # the regression stand-in for the class probability
        m: torch.exp(-(o.detach().reshape(-1) - batch.labels).abs()).sum()
        for m, o in out.unimodal_logits.items()
    }
    assert k == pytest.approx(_floats(mlb_coefficients(scores, 1.0, 10.0)))


def test_train_run_three_epochs_is_finite(tiny_synthetic, tmp_path) -> None:
    result = train_run(tiny_synthetic, "mlb", tiny_run_config(3, mlb={}), seed=0, out_dir=tmp_path)
    assert len(result.history) == 3
    for row in result.history:
        for key in ("train_loss", "train_k[m1]", "train_k[m2]", "val_loss"):
            assert math.isfinite(row[key]), key


def test_single_modality_and_bad_params_are_refused(tiny_synthetic) -> None:
    from mcr.data.dataset import DatasetInfo

    info = DatasetInfo("one", "classification", 3, ("a",), {"a": (4,)})
    with pytest.raises(ConfigError, match="needs >= 2 modalities"):
        create_method("mlb", {}, info)
    with pytest.raises(ConfigError, match=r"beta_max=-1\.0: expected >= 0"):
        create_method("mlb", {"beta_max": -1}, tiny_synthetic.info)
