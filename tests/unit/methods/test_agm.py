"""AGM: Shapley responses add up to the fused logits, kappa scales each encoder's gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.data.dataset import DatasetInfo
from mcr.methods import create_method
from mcr.methods.agm import agm_coefficients, relative_ratios, shapley_responses
from mcr.training import train_run
from tests.conftest import build_method, first_batch, gradients, tiny_run_config


def responses_of(method, model, batch):
    out = model(batch.inputs)
    zero = method.zero_contributions(model, batch, out.modalities)
    return out, zero, shapley_responses(model.fusion.combine, out.contributions, zero)


@pytest.mark.parametrize("fixture", ["tiny_synthetic", "tiny_synthetic3"])
def test_responses_sum_to_the_fused_logits(fixture, request) -> None:
    dataset = request.getfixturevalue(fixture)
    method, model = build_method("agm", {}, dataset)
    out, _, responses = responses_of(method, model, first_batch(dataset, 16))
    assert set(responses) == set(dataset.info.modalities)
    torch.testing.assert_close(torch.stack(list(responses.values())).sum(0), out.logits)


def test_efficiency_holds_for_a_non_additive_head() -> None:
    gen = torch.Generator().manual_seed(0)
    present = {m: torch.randn(4, 3, generator=gen) for m in "abc"}
    absent = {m: torch.randn(1, 3, generator=gen) for m in "abc"}

    def combine(parts):  # products and a nonlinearity: no additive split exists
        a, b, c = parts["a"], parts["b"], parts["c"]
        return torch.tanh(a * b) + b * c - a * c + 0.5

    responses = shapley_responses(combine, present, absent)
    torch.testing.assert_close(sum(responses.values()), combine(present))


def test_two_modalities_give_the_official_formula(tiny_synthetic) -> None:
    method, model = build_method("agm", {}, tiny_synthetic)
    out, zero, responses = responses_of(method, model, first_batch(tiny_synthetic, 8))
    c, z = out.contributions, {m: zero[m].expand_as(out.contributions[m]) for m in zero}
    f = model.fusion.combine
    f_av, f_0v = out.logits, f({"m1": z["m1"], "m2": c["m2"]})
    f_a0 = f({"m1": c["m1"], "m2": z["m2"]})
    torch.testing.assert_close(responses["m1"], 0.5 * (f_av - f_0v + f_a0))
    torch.testing.assert_close(responses["m2"], 0.5 * (f_av - f_a0 + f_0v))


def test_linear_head_response_is_contribution_shift_plus_shared_part(tiny_synthetic3) -> None:
    """With ``v(S) = sum_S c + sum_notS c0 + b``: ``m_i = c_i - c0_i + (sum_j c0_j + b) / M``."""
    method, model = build_method("agm", {}, tiny_synthetic3)
    out, zero, responses = responses_of(method, model, first_batch(tiny_synthetic3, 8))
    shared = (torch.stack(list(zero.values())).sum(0) + model.fusion.bias) / 3
    for m in out.modalities:
        torch.testing.assert_close(responses[m], out.contributions[m] - zero[m] + shared)


def test_zero_row_is_encoded_in_eval_mode_and_train_mode_is_restored(tiny_synthetic) -> None:
    method, model = build_method("agm", {}, tiny_synthetic)  # the MLP encoder has dropout
    model.train()
    batch = first_batch(tiny_synthetic, 4)
    zero = method.zero_contributions(model, batch, model.modalities)
    assert model.training and all(e.training for e in model.encoders.values())
    model.eval()
    with torch.no_grad():
        expected = model.fusion.contribution(
            "m1", model.encoders["m1"](batch.inputs["m1"][:1] * 0)
        )
    torch.testing.assert_close(zero["m1"], expected)
    assert zero["m1"].requires_grad  # the fusion weights still receive its gradient


def test_coefficients_hand_computed() -> None:
    scores, means = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.5])
    kappa = agm_coefficients(scores, means, alpha=0.5)
    # r = (e^1, e^-1), r_bar = (1, 1): kappa = exp(0.5 * (1 - r))
    expected = [math.exp(0.5 * (1 - math.e)), math.exp(0.5 * (1 - math.exp(-1)))]
    torch.testing.assert_close(kappa, torch.tensor(expected))
    capped = agm_coefficients(torch.tensor([9.0, 0.0]), torch.tensor([0.0, 9.0]), alpha=0.1)
    assert capped[0].item() == pytest.approx(math.exp(0.1 * 10))  # min(r_bar - r, 10)
    three = relative_ratios(torch.tensor([1.0, 2.0, 4.0]))
    torch.testing.assert_close(three, torch.exp(torch.tensor([2.0, 0.5, -2.5])))


def test_kappa_is_one_when_the_ratio_equals_its_running_average() -> None:
    scores = torch.tensor([0.3, 1.7, 0.9])
    torch.testing.assert_close(agm_coefficients(scores, scores.clone(), 3.0), torch.ones(3))
    shifted = agm_coefficients(scores, scores + 5.0, 3.0)  # same ratios, same kappa
    torch.testing.assert_close(shifted, torch.ones(3))


def test_encoder_gradient_is_kappa_times_the_joint_gradient(tiny_synthetic) -> None:
    method, model = build_method("agm", {"alpha": 2.0, "fusion_grad_clip": 0.0}, tiny_synthetic)
    model.eval()  # no dropout: the two forward passes below must see the same network
    batch = first_batch(tiny_synthetic, 32)
    method.mean_scores, method.steps = torch.tensor([1.2, 2.0]), 5  # some history
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    kappa = method.last_coefficients
    assert abs(kappa["m1"].item() - kappa["m2"].item()) > 0.1  # a real modulation
    losses.total.backward()
    scaled = gradients(model)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(batch.inputs).logits, batch.labels).backward()  # plain joint loss
    joint = gradients(model)
    for name, g in joint.items():
        if name.startswith("encoders."):
            torch.testing.assert_close(scaled[name], kappa[name.split(".")[1]] * g)
    assert torch.allclose(losses.terms["task"], F.cross_entropy(out.logits, batch.labels))


def test_running_means_are_updated_after_the_coefficients(tiny_synthetic) -> None:
    method, model = build_method("agm", {"alpha": 1.0}, tiny_synthetic)
    first, second = first_batch(tiny_synthetic, 16), first_batch(tiny_synthetic, 48)
    out = model(first.inputs)
    terms = method.loss(model, first, out).terms
    s1 = torch.stack([terms["score[m1]"], terms["score[m2]"]])
    # first step: s_bar = 0 -> r_bar = 1
    torch.testing.assert_close(
        method.last_coefficients["m1"], agm_coefficients(s1, 0 * s1, 1.0)[0]
    )
    torch.testing.assert_close(method.mean_scores, s1)
    out = model(second.inputs)
    terms = method.loss(model, second, out).terms
    s2 = torch.stack([terms["score[m1]"], terms["score[m2]"]])
    torch.testing.assert_close(method.last_coefficients["m2"], agm_coefficients(s2, s1, 1.0)[1])
    torch.testing.assert_close(method.mean_scores, (s1 + s2) / 2)
    # the score is the mean negative log-likelihood of the response
    zero = method.zero_contributions(model, second, out.modalities)
    responses = shapley_responses(model.fusion.combine, out.contributions, zero)
    nll = F.cross_entropy(responses["m1"], second.labels)
    assert terms["score[m1]"].item() == pytest.approx(nll.item(), rel=1e-5)
    restored = create_method("agm", {"alpha": 1.0}, tiny_synthetic.info)
    restored.load_state_dict(method.state_dict())
    assert restored.steps == 2 and torch.equal(restored.mean_scores, method.mean_scores)


def test_fusion_gradient_clip_only_when_a_fusion_entry_is_large(tiny_synthetic) -> None:
    method, model = build_method("agm", {"fusion_grad_clip": 1.0}, tiny_synthetic)
    batch = first_batch(tiny_synthetic)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    before = gradients(model)
    method.after_backward(model, batch, None)
    assert all(torch.equal(before[n], g) for n, g in gradients(model).items())
    model.fusion.weights["m2"].weight.grad[0, 0] = -3.0
    before = gradients(model)
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in before.values()]))
    method.after_backward(model, batch, None)
    for name, g in gradients(model).items():
        torch.testing.assert_close(g, before[name] / (norm + 1e-6))


def test_regression_scores_are_l1(tiny_regression) -> None:
    method, model = build_method("agm", {}, tiny_regression)
    batch = first_batch(tiny_regression, 16)
    out, _, responses = responses_of(method, model, batch)
    terms = method.loss(model, batch, out).terms
    l1 = (responses["a"].reshape(-1) - batch.labels).abs().mean()
    assert terms["score[a]"].item() == pytest.approx(l1.item(), rel=1e-5)


def test_three_epochs_train_with_finite_losses(tiny_synthetic, tmp_path) -> None:
    result = train_run(tiny_synthetic, "agm", tiny_run_config(3), 0, tmp_path)
    assert len(result.history) == 3
    for row in result.history:
        assert all(math.isfinite(v) for v in row.values())
        assert row["train_kappa[m1]"] > 0 and row["train_kappa[m2]"] > 0


def test_config_and_single_modality_are_refused() -> None:
    info = DatasetInfo("one", "classification", 3, ("a",), {"a": (4,)})
    with pytest.raises(ConfigError, match="needs >= 2 modalities"):
        create_method("agm", {}, info)
    two = DatasetInfo("two", "classification", 3, ("a", "b"), {"a": (4,), "b": (4,)})
    with pytest.raises(ConfigError, match=r"alpha=-1\.0: expected >= 0"):
        create_method("agm", {"alpha": -1.0}, two)
