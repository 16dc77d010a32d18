"""MLA: per-sample entropy fusion, the OWM projector by hand, one modality per sub-step."""

from __future__ import annotations

import math

import pytest
import torch

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.mla import (
    MLAMethod,
    project_gradient,
    projector_alpha,
    update_projector,
)
from mcr.models.fusion import entropy_weights
from mcr.training import RunConfig, load_model, predict, train_run
from mcr.training.inference import validation_metrics
from tests.conftest import (
    assert_resume_is_identical,
    build_method,
    first_batch,
    gradients,
    tiny_run_config,
)


def entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p)


def softmax(o: list[float]) -> list[float]:
    e = [math.exp(x) for x in o]
    return [x / sum(e) for x in e]


def test_entropy_weights_match_the_papers_formula_per_sample() -> None:
    logits = {
        "a": torch.tensor([[2.0, 0.0], [0.0, 0.0]]),
        "b": torch.tensor([[0.0, 0.0], [0.0, 3.0]]),
    }
    w = entropy_weights(logits)
    for row in range(2):
        e = {m: entropy(softmax(o[row].tolist())) for m, o in logits.items()}
        top = max(e.values())  # official: exp(max_m' E_m' - E_m), normalised
        expected = {m: math.exp(top - e[m]) for m in e}
        for m in e:
            assert float(w[m][row]) == pytest.approx(expected[m] / sum(expected.values()))
    # row 0: a is confident, b uniform; row 1 the other way round -- per sample, not per batch
    assert w["a"][0] > w["b"][0] and w["b"][1] > w["a"][1]
    torch.testing.assert_close(w["a"] + w["b"], torch.ones(2))


def test_fused_prediction_is_per_sample_and_entropy_weighted(tiny_synthetic3) -> None:
    _, model = build_method("mla", {}, tiny_synthetic3)
    model.eval()
    batch = first_batch(tiny_synthetic3, 24)
    with torch.no_grad():
        out = model(batch.inputs)
        heads = {m: model.fusion.head_logits(z) for m, z in out.latents.items()}
        weights = entropy_weights(heads)
        expected = sum(weights[m].unsqueeze(-1) * heads[m] for m in heads)
        torch.testing.assert_close(out.logits, expected)
        torch.testing.assert_close(sum(weights.values()), torch.ones(24))
        # a sample's prediction does not depend on the rest of the batch
        rows = [3, 7, 11]
        alone = model({m: x[rows] for m, x in batch.inputs.items()}).logits
        torch.testing.assert_close(alone, out.logits[rows])
        single = model({m: x[5:6] for m, x in batch.inputs.items()}).logits
        torch.testing.assert_close(single, out.logits[5:6])


def test_projector_update_and_projection_by_hand() -> None:
    p = update_projector(torch.eye(2), torch.tensor([1.0, 0.0]), alpha=0.1)
    # k = r, r^T k = 1: P = I - diag(1, 0) / 1.1 = diag(1/11, 1), then / ||.||_F
    norm = math.sqrt((1 / 11) ** 2 + 1)
    torch.testing.assert_close(p, torch.tensor([[1 / 11 / norm, 0.0], [0.0, 1 / norm]]))
    assert float(torch.linalg.matrix_norm(p)) == pytest.approx(1.0)
    grad = torch.tensor([[2.0, 3.0], [-1.0, 4.0]])
    torch.testing.assert_close(project_gradient(grad, p), grad @ p.t())
    torch.testing.assert_close(
        project_gradient(grad, p), torch.tensor([[2 / 11, 3.0], [-1 / 11, 4.0]]) / norm
    )
    # non-symmetric start: P^T, not P, multiplies the gradient
    q = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    torch.testing.assert_close(project_gradient(grad, q), torch.tensor([[8.0, 3.0], [7.0, 4.0]]))


def test_projected_gradient_is_orthogonal_to_the_protected_input() -> None:
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(6, generator=gen)
    p = update_projector(torch.eye(6), r, alpha=1e-9)  # alpha -> 0: exact projection
    grad = torch.randn(4, 6, generator=gen)
    projected = project_gradient(grad, p)
    # the head's output on r no longer changes: (grad P^T) r = 0
    torch.testing.assert_close(projected @ r, torch.zeros(4), atol=1e-5, rtol=0)
    assert torch.linalg.matrix_norm(grad @ r.unsqueeze(1)) > 1.0


def test_alpha_follows_the_batch_index_within_the_epoch(tiny_synthetic) -> None:
    method, model = build_method("mla", {}, tiny_synthetic)
    batches = len(tiny_synthetic.train) // 32  # 420 // 32 = 13, the loop's count
    batch = first_batch(tiny_synthetic, 32)
    for epoch in range(2):
        method.on_epoch_start(epoch, model)
        for b in range(3):
            for sub in range(2):
                method.begin_substep(sub)
                method.loss(model, batch, model(batch.inputs))
                assert method.alpha == pytest.approx(0.1 ** (1 + b / batches))
    assert projector_alpha(0, 13) == pytest.approx(0.1)
    assert projector_alpha(13, 13) == pytest.approx(0.01)


def test_each_substep_trains_only_its_encoder_and_the_shared_head(tiny_synthetic3) -> None:
    method, model = build_method("mla", {}, tiny_synthetic3)
    assert method.substeps_per_batch == 3
    batch = first_batch(tiny_synthetic3)
    for i, m in enumerate(model.modalities):
        method.begin_substep(i)
        model.zero_grad(set_to_none=True)
        out = model(batch.inputs)
        losses = method.loss(model, batch, out)
        expected = torch.nn.functional.cross_entropy(
            model.fusion.head_logits(out.latents[m]), batch.labels
        )
        torch.testing.assert_close(losses.total, expected)
        losses.total.backward()
        names = {n for n, g in gradients(model).items() if g.abs().sum() > 0}
        expected_names = {n for n, _ in model.named_parameters() if n.startswith(f"encoders.{m}.")}
        assert names == expected_names | {"fusion.head.weight", "fusion.head.bias"}


def test_after_backward_projects_the_head_weight_with_the_updated_projector(
    tiny_synthetic,
) -> None:
    method, model = build_method("mla", {}, tiny_synthetic)
    batch = first_batch(tiny_synthetic, 32)
    method.on_epoch_start(0, model)
    for step, sub in enumerate([0, 1, 0]):
        method.begin_substep(sub)
        model.zero_grad(set_to_none=True)
        out = model(batch.inputs)
        method.loss(model, batch, out).total.backward()
        before = gradients(model)
        p_before = method.projector.clone()
        method.after_backward(model, batch, out)
        after = gradients(model)
        if step == 0:  # official: the run's first step neither updates nor applies P
            assert torch.equal(method.projector, torch.eye(8))
            assert all(torch.equal(after[n], g) for n, g in before.items())
            continue
        r = out.latents[model.modalities[sub]].detach().mean(0)
        b = 0 if step < 2 else 1
        alpha = 0.1 ** (1 + b / 13)
        k = p_before @ r
        p = p_before - torch.outer(k, k) / (alpha + r @ k)
        p = p / p.norm()
        torch.testing.assert_close(method.projector, p)
        torch.testing.assert_close(after["fusion.head.weight"], before["fusion.head.weight"] @ p.T)
        for name, g in before.items():  # bias and encoders untouched
            if name != "fusion.head.weight":
                assert torch.equal(after[name], g), name


def test_projector_off_leaves_gradients_alone(tiny_synthetic) -> None:
    method, model = build_method("mla", {"gs_flag": False}, tiny_synthetic)
    batch = first_batch(tiny_synthetic)
    for sub in (0, 1, 0):
        method.begin_substep(sub)
        model.zero_grad(set_to_none=True)
        out = model(batch.inputs)
        losses = method.loss(model, batch, out)
        losses.total.backward()
        before = gradients(model)
        method.after_backward(model, batch, out)
        assert all(torch.equal(gradients(model)[n], g) for n, g in before.items())
    assert "alpha" not in losses.terms


def test_state_dict_round_trip(tiny_synthetic) -> None:
    method, _ = build_method("mla", {}, tiny_synthetic)
    method.projector = update_projector(method.projector, torch.ones(8), 0.05)
    method.projector_steps = 7
    fresh, _ = build_method("mla", {}, tiny_synthetic)
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.projector, method.projector) and fresh.projector_steps == 7


def test_train_run_is_finite_and_the_checkpoint_predicts_the_same(tiny_synthetic, tmp_path):
    result = train_run(tiny_synthetic, "mla", tiny_run_config(3), 0, tmp_path / "run")
    assert len(result.history) == 3
    for row in result.history:
        assert all(math.isfinite(v) for v in row.values())
        assert {"train_task[m1]", "train_task[m2]", "train_alpha"} <= set(row)
    model = load_model(tmp_path / "run")
    assert isinstance(create_method("mla", {}, tiny_synthetic.info), MLAMethod)
    val = validation_metrics(
        tiny_synthetic.info, predict(model, tiny_synthetic.val.inputs), tiny_synthetic.val.labels
    )
    assert val == pytest.approx(result.best_val)
    assert val["accuracy"] > 0.3  # chance is 0.2


def test_resume_gives_the_uninterrupted_run(tiny_synthetic, tmp_path) -> None:
    assert_resume_is_identical(tiny_synthetic, "mla", tiny_run_config(3), 1, tmp_path)


def test_regression_is_refused(tiny_regression) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("mla", {}, tiny_regression.info)


def test_unequal_latent_dims_are_refused(tiny_synthetic, tmp_path) -> None:
    encoder = {"name": "mlp", "hidden_dims": [16], "latent_dim": 8}
    config = RunConfig.from_params(
        {
            "train": {
                "common": {"epochs": 1, "device": "cpu", "progress": False},
                "model": {"encoder": encoder, "encoders": {"m2": {**encoder, "latent_dim": 4}}},
            }
        }
    )
    with pytest.raises(ConfigError, match="equal latent dims"):
        train_run(tiny_synthetic, "mla", config, 0, tmp_path / "run")
