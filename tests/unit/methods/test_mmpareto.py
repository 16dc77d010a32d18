"""MMPareto: closed-form 2-task min-norm weights, the gradient rewrite, heads untouched."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.mmpareto import (
    cosine,
    min_norm_weights,
    pareto_gradient,
    pareto_weights,
)
from mcr.training import train_run
from tests.conftest import build_method, first_batch, gradients, tiny_run_config


def test_min_norm_weights_hand_computed() -> None:
    # g1=(1,0), g2=(-1,1): w = (g2-g1).g2 / |g1-g2|^2 = ((-2)(-1) + 1*1) / (4 + 1) = 3/5
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    w1, w2 = min_norm_weights(g1, g2)
    assert w1 == pytest.approx(0.6) and w2 == pytest.approx(0.4)
    d = w1 * g1 + w2 * g2  # (0.2, 0.4): the foot of the perpendicular from 0 to the segment
    torch.testing.assert_close(d, torch.tensor([0.2, 0.4]))
    assert float(d.dot(g1 - g2)) == pytest.approx(0.0, abs=1e-7)
    # equal inner products with both tasks: a common descent direction
    assert float(d.dot(g1)) == pytest.approx(float(d.dot(g2)))
    # clipped cases: g1 inside g2's direction -> all weight on the shorter one
    assert min_norm_weights(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])) == (1.0, 0.0)
    assert min_norm_weights(torch.tensor([2.0, 1.0]), torch.tensor([2.0, 1.0])) == (0.5, 0.5)


def test_no_conflict_gives_equal_weights_and_conflict_gives_min_norm() -> None:
    w1, w2, cos = pareto_weights(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert (w1, w2) == (0.5, 0.5) and cos == pytest.approx(1 / math.sqrt(2))
    w1, w2, cos = pareto_weights(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0]))
    assert (w1, w2) == pytest.approx((0.6, 0.4)) and cos == pytest.approx(-1 / math.sqrt(2))
    assert cosine(torch.zeros(3), torch.ones(3)) == 0.0


def test_min_norm_combination_is_no_longer_than_either_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        g1, g2 = torch.randn(2, 7, generator=gen) * torch.rand(2, 1, generator=gen) * 5
        w1, w2 = min_norm_weights(g1, g2)
        assert 0.0 <= w1 <= 1.0 and w1 + w2 == pytest.approx(1.0)
        norm = float((w1 * g1 + w2 * g2).norm())
        assert norm <= min(float(g1.norm()), float(g2.norm())) + 1e-6
        for w in torch.linspace(0, 1, 11):  # and no other convex combination is shorter
            assert norm <= float((w * g1 + (1 - w) * g2).norm()) + 1e-6


def test_pareto_gradient_rescaling() -> None:
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    # cos > 0, gamma 1, r = |a + b| / |a + b| = 1 <= 1: exactly the plain sum
    torch.testing.assert_close(pareto_gradient(a, b, a + b, (0.5, 0.5), 1.0), a + b)
    # r > 1: enlarged to the total's norm, then times gamma
    total = torch.tensor([30.0, 0.0])
    new = pareto_gradient(a, b, total, (0.5, 0.5), 1.5)
    assert float(new.norm()) == pytest.approx(1.5 * 30.0)
    torch.testing.assert_close(new / new.norm(), (a + b) / (a + b).norm())
    # r < 1: gamma * g_new, not shrunk
    new = pareto_gradient(a, b, torch.tensor([0.1, 0.0]), (0.25, 0.75), 2.0)
    torch.testing.assert_close(new, 2.0 * 2 * (0.25 * a + 0.75 * b))
    # cancelling gradients: zero, never NaN
    zero = pareto_gradient(a, -a, torch.zeros(2), (0.5, 0.5), 1.5)
    assert torch.equal(zero, torch.zeros(2))


def _step(method, model, batch):
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    model.zero_grad(set_to_none=True)
    losses.total.backward()
    before = gradients(model)
    method.after_backward(model, batch, out)
    return losses, before, gradients(model)


def _encoder_grads(model, batch, loss_of):
    model.zero_grad(set_to_none=True)
    out = model(batch.inputs)
    loss_of(out).backward()
    return gradients(model)


def test_encoder_gradients_are_rewritten_and_heads_kept(tiny_synthetic) -> None:
    gamma = 1.5
    method, model = build_method("mmpareto", {"gamma": gamma}, tiny_synthetic)
    model.eval()  # no dropout: the reference gradients below come from identical forwards
    batch = first_batch(tiny_synthetic, 64)
    losses, before, after = _step(method, model, batch)
    task = method.task_loss
    g_mm = _encoder_grads(model, batch, lambda o: task(o.logits, batch.labels))
    for m in model.modalities:
        g_u = _encoder_grads(model, batch, lambda o, m=m: task(o.unimodal_logits[m], batch.labels))
        names = [n for n in before if n.startswith(f"encoders.{m}.")]
        flat = [torch.cat([g[n].flatten() for n in names]) for g in (g_mm, g_u)]
        w1, w2, cos = pareto_weights(*flat)
        assert float(losses.terms[f"w_mm[{m}]"]) == pytest.approx(w1)
        assert float(losses.terms[f"cos[{m}]"]) == pytest.approx(cos, abs=1e-6)
        for n in names:
            expected = pareto_gradient(g_mm[n], g_u[n], before[n], (w1, w2), gamma)
            torch.testing.assert_close(after[n], expected, rtol=1e-5, atol=1e-7)
            assert not torch.equal(after[n], before[n])
    for n, g in before.items():
        if not n.startswith("encoders."):
            assert torch.equal(after[n], g), n  # fusion head and unimodal heads unchanged


def test_gamma_one_without_conflict_is_plain_multiloss(tiny_synthetic) -> None:
    """cos > 0 and gamma = 1: g_new = g_mm + g_u = g_total, r = 1 -> the ordinary gradient."""
    method, model = build_method("mmpareto", {"gamma": 1.0}, tiny_synthetic)
    model.eval()
    batch = first_batch(tiny_synthetic, 64)
    losses, before, after = _step(method, model, batch)
    agreeing = [m for m in model.modalities if float(losses.terms[f"cos[{m}]"]) > 0]
    assert agreeing  # at initialisation the fused and unimodal losses agree on some encoder
    for n, g in before.items():
        if any(n.startswith(f"encoders.{m}.") for m in agreeing):
            torch.testing.assert_close(after[n], g, rtol=1e-5, atol=1e-7)


def test_train_run_is_finite_and_logs_weights(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(3)
    result = train_run(tiny_synthetic, "mmpareto", config, 0, tmp_path / "run")
    assert len(result.history) == 3
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    last = result.history[-1]
    for m in ("m1", "m2"):
        assert 0.0 <= last[f"train_w_mm[{m}]"] <= 1.0 and -1 <= last[f"train_cos[{m}]"] <= 1


def test_regression_and_three_modalities(tiny_regression, tiny_synthetic3, tmp_path) -> None:
    result = train_run(tiny_regression, "mmpareto", tiny_run_config(3), 0, tmp_path / "reg")
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    method, model = build_method("mmpareto", {}, tiny_synthetic3)
    losses, before, after = _step(method, model, first_batch(tiny_synthetic3))
    assert {k for k in losses.terms if k.startswith("w_mm")} == {f"w_mm[m{i}]" for i in (1, 2, 3)}
    changed = {n.split(".")[1] for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"m1", "m2", "m3"}  # every encoder rewritten (default gamma 1.5)
    assert all(torch.equal(after[n], g) for n, g in before.items() if n.startswith("fusion"))


def test_refusals(tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="gamma"):
        create_method("mmpareto", {"gamma": 0.0}, tiny_synthetic.info)
    one = dataclasses.replace(tiny_synthetic.info, modalities=("m1",))
    with pytest.raises(ConfigError, match=">= 2 modalities"):
        create_method("mmpareto", {}, one)
