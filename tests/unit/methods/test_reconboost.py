"""ReconBoost: boosting weights, the stage schedule, gradient routing, the GA term, resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.reconboost import RECTIFY, boosting_loss, boosting_weights, stage_of
from mcr.training import train_run
from tests.conftest import assert_resume_is_identical, build_method, first_batch, tiny_run_config


def test_boosting_weights_hand_computed() -> None:
    ensemble = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    labels = torch.tensor([0, 2])
    weights = boosting_weights(ensemble, labels, w1=3.0, w2=1.0)
    # (w2 p_ens(y) - w1) / C: (0.5 - 3) / 3 and (0.25 - 3) / 3
    torch.testing.assert_close(weights, torch.tensor([-2.5 / 3, -2.75 / 3]))


def test_boosting_loss_equals_the_reference_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    learner, ensemble = torch.randn(2, 8, 6, generator=gen)
    labels = torch.randint(0, 6, (8,), generator=gen)
    w1, w2 = 5.0, 1.0
    target = F.one_hot(labels, 6).float()
    log_p = learner.log_softmax(1)
    reference = -w1 * (target * log_p).mean(-1) + w2 * (target * ensemble.softmax(1) * log_p).mean(
        -1
    )
    value = boosting_loss(learner, ensemble, labels, w1, w2)
    torch.testing.assert_close(value, reference.mean())
    # a sample the ensemble already gets right weighs less than one it gets wrong
    sure = torch.tensor([[20.0, 0.0, 0.0]])
    wrong = torch.tensor([[0.0, 20.0, 0.0]])
    y = torch.tensor([0])
    assert abs(boosting_weights(sure, y, w1, w2)) < abs(boosting_weights(wrong, y, w1, w2))


def test_schedule_alternates_stages_and_rectification() -> None:
    seq = [stage_of(e, 2, 1, 1) for e in range(8)]
    assert seq == [0, RECTIFY, 1, RECTIFY, 0, RECTIFY, 1, RECTIFY]
    assert [stage_of(e, 2, 2, 1) for e in range(7)] == [0, 0, RECTIFY, 1, 1, RECTIFY, 0]
    assert [stage_of(e, 3, 1, 0) for e in range(5)] == [0, 1, 2, 0, 1]


def _step(method, model, batch):
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    model.zero_grad(set_to_none=True)
    losses.total.backward()
    return losses, {n: p.grad for n, p in model.named_parameters()}


def test_only_the_staged_modality_receives_gradient(tiny_synthetic) -> None:
    method, model = build_method("reconboost", {}, tiny_synthetic)
    batch = first_batch(tiny_synthetic, 64)
    for epoch, staged in ((0, "m1"), (2, "m2"), (4, "m1")):
        method.on_epoch_start(epoch, model)
        losses, grads = _step(method, model, batch)
        assert float(losses.terms["stage"]) == model.modalities.index(staged)
        other = "m2" if staged == "m1" else "m1"
        for name, g in grads.items():
            if name.startswith((f"encoders.{staged}.", f"fusion.weights.{staged}.")):
                assert g is not None and g.abs().sum() > 0, name
            elif name == "fusion.bias":
                assert g is not None  # the shared bias is part of every learner
            else:  # other player and all unimodal heads: untouched (None, so Adam skips them)
                assert g is None, name
        assert any(n.startswith(f"encoders.{other}.") for n in grads)
    method.on_epoch_start(1, model)  # rectification: plain task loss, everyone trains
    losses, grads = _step(method, model, batch)
    assert float(losses.terms["stage"]) == RECTIFY and "boost" not in losses.terms
    torch.testing.assert_close(losses.total, losses.terms["task"])
    assert all(g is not None for n, g in grads.items() if not n.startswith("unimodal_heads"))


def test_stage_loss_is_the_boosting_formula(tiny_synthetic) -> None:
    method, model = build_method("reconboost", {"alpha": 0.0}, tiny_synthetic)
    model.eval()
    batch = first_batch(tiny_synthetic, 32)
    method.on_epoch_start(2, model)  # m2's stage
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    expected = boosting_loss(
        out.contributions["m2"] + out.bias / 2, out.contributions["m1"] + out.bias / 2,
        batch.labels, 3.0, 1.0,
    )  # fmt: skip
    torch.testing.assert_close(losses.total, expected)


def test_ga_term_has_gradient_once_the_learner_moved(tiny_synthetic) -> None:
    params = {"weight1": 0.0, "weight2": 0.0, "alpha": 1.0}  # isolate the GA term
    method, model = build_method("reconboost", params, tiny_synthetic)
    model.eval()
    batch = first_batch(tiny_synthetic, 32)
    method.on_epoch_start(0, model)  # first stage of m1: nothing to remember yet
    losses, _ = _step(method, model, batch)
    assert "ga" not in losses.terms
    method.on_epoch_start(4, model)  # m1 again, second cycle: snapshot taken now
    losses, grads = _step(method, model, batch)
    assert float(losses.terms["ga"]) == 0.0  # learner == snapshot
    assert all(g is None or g.abs().sum() == 0 for n, g in grads.items())
    with torch.no_grad():  # the learner moves away from its snapshot
        for p in model.encoders["m1"].parameters():
            p.add_(0.3 * torch.randn_like(p))
    losses, grads = _step(method, model, batch)
    assert float(losses.terms["ga"]) > 0
    enc = [g for n, g in grads.items() if n.startswith("encoders.m1.")]
    assert all(g is not None for g in enc) and sum(float(g.abs().sum()) for g in enc) > 0
    assert all(g is None for n, g in grads.items() if n.startswith("encoders.m2."))
    # the snapshot is frozen: it did not move with the model
    snap = dict(method.snapshot.encoder.named_parameters())
    assert not all(torch.equal(snap[n], p) for n, p in model.encoders["m1"].named_parameters())


def test_previous_stage_target_is_the_other_learner(tiny_synthetic) -> None:
    params = {"weight1": 0.0, "weight2": 0.0, "alpha": 1.0, "ga_target": "previous_stage"}
    method, model = build_method("reconboost", params, tiny_synthetic)
    model.eval()
    batch = first_batch(tiny_synthetic, 32)
    method.on_epoch_start(2, model)  # m2's stage; the previous stage trained m1
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    p2 = F.softmax(out.in_model_logits("m2"), -1)
    p1 = F.softmax(out.in_model_logits("m1"), -1)
    torch.testing.assert_close(losses.terms["ga"], F.mse_loss(p2, p1).detach())
    method.on_epoch_start(0, model)
    assert "ga" not in method.loss(model, batch, model(batch.inputs)).terms


def test_train_run_is_finite_and_follows_the_schedule(tiny_synthetic, tmp_path) -> None:
    result = train_run(tiny_synthetic, "reconboost", tiny_run_config(3), 0, tmp_path / "run")
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    assert [row["train_stage"] for row in result.history] == [0.0, -1.0, 1.0]


def test_resume_mid_stage_restores_the_snapshot(tiny_synthetic, tmp_path) -> None:
    """Stages 2/0: epochs 4-5 are m1's second stage (GA on); the crash is after epoch 4."""
    config = tiny_run_config(6, reconboost={"epochs_per_stage": 2, "correct_epochs": 0})
    straight = assert_resume_is_identical(
        tiny_synthetic, "reconboost", config, 1, tmp_path, crash_after=4
    )
    assert "train_ga" in straight.history[5]


def test_refusals(tiny_regression, tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("reconboost", {}, tiny_regression.info)
    for bad in ({"epochs_per_stage": 0}, {"correct_epochs": -1}, {"weight1": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            create_method("reconboost", bad, tiny_synthetic.info)
