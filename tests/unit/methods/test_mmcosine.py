"""MMCosine: bounded, scale-invariant cosine contributions; no bias; the spec rebuilds the head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.mmcosine import MMCosineMethod
from mcr.models import ModelSpec, MultimodalModel
from mcr.models.fusion import CosineLateFusion
from mcr.training import TrainConfig, fit, load_model, predict, train_run
from tests.conftest import build_method, first_batch, tiny_run_config


def test_method_asks_for_the_cosine_head(tiny_synthetic) -> None:
    method, model = build_method("mmcosine", {"scale": 3.5}, tiny_synthetic)
    assert isinstance(method, MMCosineMethod)
    assert method.fusion() == {"name": "cosine", "scale": 3.5}
    assert isinstance(model.fusion, CosineLateFusion) and model.fusion.scale == 3.5
    assert create_method("mmcosine", {}, tiny_synthetic.info).fusion()["scale"] == 10.0


def test_contribution_hand_computed(tiny_synthetic) -> None:
    _, model = build_method("mmcosine", {"scale": 4.0}, tiny_synthetic)
    w1 = model.fusion.weights["m1"].weight.detach()  # (C, d)
    z1 = 7.0 * w1[2:3]  # a latent pointing exactly along class 2's weight row
    z2 = torch.randn(1, w1.shape[1])
    with torch.no_grad():
        out = model.head({"m1": z1, "m2": z2})
    expected_m1 = 4.0 * (w1 @ w1[2]) / (w1.norm(dim=1) * w1[2].norm())
    torch.testing.assert_close(out.contributions["m1"][0], expected_m1)
    assert float(out.contributions["m1"][0, 2]) == pytest.approx(4.0)  # cos = 1
    torch.testing.assert_close(out.logits, out.contributions["m1"] + out.contributions["m2"])


@pytest.mark.parametrize("fixture", ["tiny_synthetic", "tiny_synthetic3"])
def test_bounded_even_for_huge_inputs_and_weights(fixture, request) -> None:
    dataset = request.getfixturevalue(fixture)
    scale = 10.0
    _, model = build_method("mmcosine", {"scale": scale}, dataset)
    with torch.no_grad():
        for linear in model.fusion.weights.values():
            linear.weight.mul_(1e4)
    batch = first_batch(dataset, 64)
    with torch.no_grad():
        out = model({m: x * 1e4 for m, x in batch.inputs.items()})
    tol = 1e-4
    assert all(c.abs().max() <= scale + tol for c in out.contributions.values())
    num_modalities = len(dataset.info.modalities)
    assert out.logits.abs().max() <= num_modalities * scale + tol
    assert torch.isfinite(out.logits).all()
    assert max(float(c.abs().max()) for c in out.contributions.values()) > 0.5 * scale


def test_logits_invariant_to_latent_and_weight_magnitude(tiny_synthetic) -> None:
    _, model = build_method("mmcosine", {}, tiny_synthetic)
    model.eval()
    latents = model.encode(first_batch(tiny_synthetic).inputs)
    reference = model.head(latents).logits
    for c in (1e-3, 0.5, 37.5):
        scaled = {**latents, "m1": latents["m1"] * c}
        torch.testing.assert_close(model.head(scaled).logits, reference)
    with torch.no_grad():
        model.fusion.weights["m2"].weight.mul_(123.0)
    torch.testing.assert_close(model.head(latents).logits, reference)


def test_no_trainable_bias(tiny_synthetic) -> None:
    _, model = build_method("mmcosine", {}, tiny_synthetic)
    names = dict(model.named_parameters())
    assert not any(n.startswith("fusion.") and "bias" in n for n in names)
    assert {n for n in names if n.startswith("fusion.")} == {
        "fusion.weights.m1.weight",
        "fusion.weights.m2.weight",
    }
    assert torch.equal(dict(model.named_buffers())["fusion.bias"], torch.zeros(5))


def test_spec_round_trips_the_fusion(tiny_synthetic) -> None:
    _, model = build_method("mmcosine", {"scale": 3.5}, tiny_synthetic)
    spec = model.spec
    assert spec.fusion == {"name": "cosine", "scale": 3.5}
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    rebuilt = MultimodalModel(again)
    assert isinstance(rebuilt.fusion, CosineLateFusion) and rebuilt.fusion.scale == 3.5


def test_trained_model_reloads_with_its_cosine_head(tiny_synthetic, tmp_path) -> None:
    method, model = build_method("mmcosine", {"scale": 5.0}, tiny_synthetic)
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-3, device="cpu", progress=False)
    fit(model, method, tiny_synthetic.train, tiny_synthetic.val, config, 0, tmp_path)
    loaded = load_model(tmp_path / "last.pt")
    assert isinstance(loaded.fusion, CosineLateFusion) and loaded.fusion.scale == 5.0
    inputs = tiny_synthetic.test.inputs
    expected, got = predict(model, inputs), predict(loaded, inputs)
    torch.testing.assert_close(got.logits, expected.logits)
    # a linear head with the same weights would predict something else: the spec matters
    linear = torch.stack(
        [F.linear(got.latents[m], w.weight) for m, w in loaded.fusion.weights.items()]
    )
    assert not torch.allclose(linear.sum(0), got.logits)
    assert load_model(tmp_path).fusion.scale == 5.0  # best.pt too


def test_train_run_three_epochs_is_finite(tiny_synthetic, tmp_path) -> None:
    result = train_run(
        tiny_synthetic, "mmcosine", tiny_run_config(3, mmcosine={}), seed=0, out_dir=tmp_path
    )
    assert len(result.history) == 3
    assert all(
        math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
        for row in result.history
    )
    assert load_model(tmp_path).spec.fusion == {"name": "cosine", "scale": 10.0}


def test_regression_and_bad_scale_are_refused(tiny_regression, tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("mmcosine", {}, tiny_regression.info)
    with pytest.raises(ConfigError, match=r"scale=0\.0: expected > 0"):
        create_method("mmcosine", {"scale": 0}, tiny_synthetic.info)
