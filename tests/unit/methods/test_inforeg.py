"""InfoReg: proximal pull on the stronger encoders while the prime learning window is open."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.inforeg import score_gaps, window_open
from mcr.training import train_run
from tests.conftest import build_method, first_batch, gradients, tiny_run_config


def step_after_moving_the_weights(method, model, dataset, n: int = 64):
    """Epoch start (snapshot), then the encoders drift, then one loss/backward.

    Returns the batch, output, losses and the gradients before ``after_backward``.
    """
    model.eval()  # no dropout: forward passes are reproducible
    method.on_epoch_start(0, model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.encoders.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    batch = first_batch(dataset, n)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    losses.total.backward()
    return batch, out, losses, gradients(model)


def test_window_test_on_a_hand_made_trace_sequence() -> None:
    assert window_open([], 3, 0.05) and window_open([5.0], 3, 0.05)  # < 2 epochs: open
    # MA over 3 with missing epochs as 0: latest (1+2+4)/3, previous (0+1+2)/3 -> k = 4/7
    assert window_open([1.0, 2.0, 4.0], 3, 0.5) and not window_open([1.0, 2.0, 4.0], 3, 0.6)
    assert not window_open([4.0, 4.0, 4.0, 4.0], 3, 0.05)  # flat: k = 0
    # latest (2+3+3)/3 = 8/3, previous (1+2+3)/3 = 2 -> k = 0.25
    assert window_open([1.0, 2.0, 3.0, 3.0], 3, 0.2) and not window_open([1, 2, 3, 3], 3, 0.3)
    assert not window_open([3.0, 2.0, 1.0], 2, 0.0)  # falling trace: k < 0
    assert not window_open([0.0, 0.0], 10, 0.05)  # no gradient at all


def test_score_gaps_hand_computed() -> None:
    gaps = score_gaps(torch.tensor([1.0, 2.0, 4.0]))  # s is a loss: lower is stronger
    torch.testing.assert_close(gaps, torch.tensor([(1.0 + 3.0) / 2, 2.0, 0.0]))
    torch.testing.assert_close(score_gaps(torch.tensor([0.5, 0.5])), torch.zeros(2))


def test_proximal_gradient_is_coef_times_the_drift(tiny_synthetic) -> None:
    params = {"strength": 0.7, "beta": 1.5, "unimodal_weight": 0.0}
    method, model = build_method("inforeg", params, tiny_synthetic)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch, out, losses, before = step_after_moving_the_weights(method, model, tiny_synthetic)
    s = {m: F.cross_entropy(out.in_model_logits(m), batch.labels).item() for m in out.modalities}
    strong, weak = sorted(s, key=s.get)
    coef = 0.7 * math.exp(1.5 * math.tanh(s[weak] - s[strong]))
    assert losses.terms[f"coef[{strong}]"].item() == pytest.approx(coef, rel=1e-5)
    assert losses.terms[f"coef[{weak}]"].item() == 0.0
    torch.testing.assert_close(losses.total, F.cross_entropy(out.logits, batch.labels))
    method.after_backward(model, batch, out)
    after = gradients(model)
    params_now = dict(model.named_parameters())
    for name, g in before.items():
        if name.startswith(f"encoders.{strong}."):
            drift = params_now[name].detach() - start[name]
            assert drift.abs().max() > 0
            torch.testing.assert_close(after[name] - g, coef * drift)
        else:  # the weakest encoder, the fusion head: untouched
            assert torch.equal(after[name], g), name


def test_weakest_modality_is_never_regulated(tiny_synthetic3) -> None:
    method, model = build_method("inforeg", {}, tiny_synthetic3)
    batch, out, losses, before = step_after_moving_the_weights(method, model, tiny_synthetic3)
    s = {m: losses.terms[f"score[{m}]"].item() for m in out.modalities}
    weakest = max(s, key=s.get)
    assert losses.terms[f"coef[{weakest}]"].item() == 0.0
    assert all(losses.terms[f"coef[{m}]"].item() > 0 for m in s if m != weakest)
    method.after_backward(model, batch, out)
    after = gradients(model)
    for name, g in before.items():
        changed = not torch.equal(after[name], g)
        assert changed == (name.startswith("encoders.") and f".{weakest}." not in name), name


def test_closed_window_leaves_the_gradients_alone(tiny_synthetic) -> None:
    method, model = build_method("inforeg", {"window": 3}, tiny_synthetic)
    method.history = {m: [2.0, 2.0, 2.0, 2.0] for m in model.modalities}  # flat: closed
    batch, out, losses, before = step_after_moving_the_weights(method, model, tiny_synthetic)
    assert method.open == {"m1": False, "m2": False}
    assert all(losses.terms[f"coef[{m}]"].item() == 0.0 for m in model.modalities)
    method.after_backward(model, batch, out)
    assert all(torch.equal(before[n], g) for n, g in gradients(model).items())


def test_fim_trace_is_the_mean_squared_encoder_gradient_norm(tiny_synthetic) -> None:
    method, model = build_method("inforeg", {}, tiny_synthetic)
    model.eval()
    method.on_epoch_start(0, model)
    expected = {m: 0.0 for m in model.modalities}
    for n in (16, 48):  # two steps, no weight change: the proximal term is zero
        batch = first_batch(tiny_synthetic, n)
        model.zero_grad(set_to_none=True)
        out = model(batch.inputs)
        method.loss(model, batch, out).total.backward()
        for m in model.modalities:
            expected[m] += sum(p.grad.pow(2).sum().item() for p in model.encoders[m].parameters())
        method.after_backward(model, batch, out)
    method.on_epoch_end(0, model, {})
    for m in model.modalities:
        assert method.history[m] == [pytest.approx(expected[m] / 2, rel=1e-5)]
    restored = create_method("inforeg", {}, tiny_synthetic.info)
    restored.load_state_dict(method.state_dict())
    assert restored.history == method.history


def test_loss_adds_the_in_model_cross_entropies(tiny_synthetic) -> None:
    method, model = build_method("inforeg", {"unimodal_weight": 0.5}, tiny_synthetic)
    model.eval()
    method.on_epoch_start(0, model)
    batch = first_batch(tiny_synthetic)
    out = model(batch.inputs)
    uni = sum(F.cross_entropy(out.in_model_logits(m), batch.labels) for m in out.modalities)
    expected = F.cross_entropy(out.logits, batch.labels) + 0.5 * uni
    torch.testing.assert_close(method.loss(model, batch, out).total, expected)


def test_three_epochs_train_with_finite_losses(tiny_synthetic, tmp_path) -> None:
    result = train_run(tiny_synthetic, "inforeg", tiny_run_config(3), 0, tmp_path)
    assert len(result.history) == 3
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    assert all(row["train_window[m1]"] == 1.0 for row in result.history)  # early: open


def test_regression_and_bad_config_are_refused(tiny_regression, tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("inforeg", {}, tiny_regression.info)
    with pytest.raises(ConfigError, match="window=0"):
        create_method("inforeg", {"window": 0}, tiny_synthetic.info)
