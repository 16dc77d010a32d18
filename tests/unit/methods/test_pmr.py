"""PMR: training-split class prototypes, Euclidean prototype logits, weight on the weaker one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.data.dataset import DatasetInfo, Split
from mcr.methods import Batch, SetupContext, create_method
from mcr.methods.pmr import class_sums, entropy, pmr_weights, prototype_logits
from mcr.models import ModelConfig, ModelSpec, MultimodalModel
from mcr.training import train_run
from tests.conftest import build_method, first_batch, tiny_run_config

INFO = DatasetInfo("hand", "classification", 3, ("a", "v"), {"a": (2,), "v": (2,)})


def hand_split() -> Split:
    """Six rows, three classes (class 2 has one row); a and v differ."""
    a = torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0], [3.0, 3.0], [5.0, -1.0], [-2.0, 6.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [4.0, 4.0], [2.0, 0.0], [7.0, 7.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    ids = np.array([f"s{i}" for i in range(6)])
    return Split("train", {"a": a, "v": v}, labels, ids)


def identity_model() -> MultimodalModel:
    """Linear encoders ``z = x`` so the prototypes are class means of the raw inputs."""
    encoder = {"name": "mlp", "hidden_dims": [], "latent_dim": 2, "dropout": 0.0}
    model = MultimodalModel(ModelSpec.create(INFO, ModelConfig(encoder=encoder)))
    with torch.no_grad():
        for enc in model.encoders.values():
            linear = enc.net[-1]
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()
    return model


def prepared(params: dict | None = None):
    method = create_method("pmr", params or {}, INFO)
    model = identity_model()
    method.prepare(model, SetupContext(0, torch.device("cpu"), train=hand_split()))
    return method, model


def test_prototypes_are_the_training_class_means() -> None:
    method, model = prepared()
    model.train()
    method.on_epoch_start(0, model)
    a = torch.tensor([[(0 + 2 - 2) / 3, (0 + 4 + 6) / 3], [2.0, 2.0], [5.0, -1.0]])
    v = torch.tensor([[1 / 3, 4 / 3], [3.0, 2.0], [7.0, 7.0]])
    torch.testing.assert_close(method.prototypes["a"], a)
    torch.testing.assert_close(method.prototypes["v"], v)
    assert model.training  # the eval-mode pass restores the training mode
    chunked, counts = method.compute_class_means(model, chunk=4)  # chunking changes nothing
    torch.testing.assert_close(chunked["a"], a)
    torch.testing.assert_close(counts, torch.tensor([3.0, 2.0, 1.0]))


def test_class_sums_and_prototype_logits_by_hand() -> None:
    sums, counts = class_sums(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1, 1]), 3)
    torch.testing.assert_close(sums, torch.tensor([[0.0, 0.0], [4.0, 6.0], [0.0, 0.0]]))
    torch.testing.assert_close(counts, torch.tensor([0.0, 2.0, 0.0]))
    z = torch.tensor([[0.0, 0.0], [3.0, 5.0]])
    prototypes = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    expected = torch.tensor([[-5.0, -1.0], [-1.0, -5.0]])  # plain distances, not squared
    torch.testing.assert_close(prototype_logits(z, prototypes), expected)


def test_latent_on_a_prototype_has_a_finite_gradient() -> None:
    z = torch.tensor([[3.0, 4.0]], requires_grad=True)
    logits = prototype_logits(z, torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    F.cross_entropy(logits, torch.tensor([1])).backward()
    assert torch.isfinite(z.grad).all()


def test_weight_goes_to_the_weaker_modality_only() -> None:
    w = pmr_weights({"a": torch.tensor(3.0), "v": torch.tensor(1.0)}, alpha=2.0)
    assert (w["a"].item(), w["v"].item()) == (0.0, 2.0)
    tie = pmr_weights({"a": torch.tensor(2.0), "v": torch.tensor(2.0)}, alpha=2.0)
    assert (tie["a"].item(), tie["v"].item()) == (0.0, 0.0)  # rho == 1: nobody, as the code
    three = pmr_weights(
        {"a": torch.tensor(3.0), "b": torch.tensor(2.0), "c": torch.tensor(1.0)}, 1.5
    )
    assert [three[m].item() for m in "abc"] == [0.0, 0.0, 1.5]  # b == mean(3, 1): no weight


def test_loss_adds_the_prototype_ce_of_the_weaker_modality() -> None:
    method, model = prepared({"alpha": 2.0})
    method.on_epoch_start(0, model)
    split = hand_split()
    batch = Batch(split.inputs, split.labels)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    p = {m: prototype_logits(split.inputs[m], method.prototypes[m]) for m in ("a", "v")}
    s = {m: F.softmax(p[m], -1).gather(1, split.labels[:, None]).sum() for m in p}
    weaker = min(s, key=lambda m: s[m].item())
    expected = F.cross_entropy(out.logits, split.labels) + 2.0 * F.cross_entropy(
        p[weaker], split.labels
    )
    torch.testing.assert_close(losses.total, expected)
    assert losses.terms[f"proto_weight[{weaker}]"].item() == 2.0
    assert sum(losses.terms[f"proto_weight[{m}]"].item() for m in p) == 2.0


def test_gradient_of_the_weaker_ce_reaches_only_its_encoder(tiny_synthetic) -> None:
    method, model = build_method("pmr", {"alpha": 2.0}, tiny_synthetic)
    model.eval()
    method.on_epoch_start(0, model)
    batch = first_batch(tiny_synthetic, 64)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    weaker = next(m for m in model.modalities if losses.terms[f"proto_weight[{m}]"] > 0)
    extra = losses.total - F.cross_entropy(out.logits, batch.labels)
    grads = torch.autograd.grad(extra, list(model.parameters()), allow_unused=True)
    for (name, _), g in zip(model.named_parameters(), grads, strict=True):
        touched = g is not None and g.abs().sum() > 0
        assert touched == name.startswith(f"encoders.{weaker}."), name


def test_momentum_ema_of_the_prototypes() -> None:
    method, model = prepared({"momentum": 0.25})
    method.on_epoch_start(0, model)
    old = {m: c.clone() for m, c in method.prototypes.items()}
    with torch.no_grad():
        for enc in model.encoders.values():
            enc.net[-1].weight.mul_(2.0)  # z = 2x: the new class means double
    method.on_epoch_start(1, model)
    for m, c in old.items():
        torch.testing.assert_close(method.prototypes[m], 0.75 * (2 * c) + 0.25 * c)
    restored = create_method("pmr", {"momentum": 0.25}, INFO)
    restored.load_state_dict(method.state_dict())
    torch.testing.assert_close(restored.prototypes["a"], method.prototypes["a"])


def test_outside_the_window_the_loss_is_the_task_loss() -> None:
    method, model = prepared({"modulation_starts": 2, "modulation_ends": 3})
    method.on_epoch_start(0, model)
    assert method.prototypes is None  # not needed, not computed
    split = hand_split()
    batch = Batch(split.inputs, split.labels)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    torch.testing.assert_close(losses.total, F.cross_entropy(out.logits, split.labels))
    assert set(losses.terms) == {"task"}


def test_entropy_regulariser_on_the_dominant_modality() -> None:
    params = {"alpha": 0.0, "entropy_weight": 0.1, "entropy_epochs": 1}
    method, model = prepared(params)
    method.on_epoch_start(0, model)
    split = hand_split()
    batch = Batch(split.inputs, split.labels)
    out = model(batch.inputs)
    p = {m: prototype_logits(split.inputs[m], method.prototypes[m]) for m in ("a", "v")}
    s = {m: F.softmax(p[m], -1).gather(1, split.labels[:, None]).sum() for m in p}
    stronger = max(s, key=lambda m: s[m].item())
    expected = F.cross_entropy(out.logits, split.labels) - 0.1 * entropy(p[stronger])
    torch.testing.assert_close(method.loss(model, batch, out).total, expected)
    probs = F.softmax(p[stronger], -1)
    assert entropy(p[stronger]).item() == pytest.approx(
        -(probs * probs.log()).sum(-1).mean().item()
    )
    method.on_epoch_start(1, model)  # past entropy_epochs and alpha 0: the task loss alone
    torch.testing.assert_close(
        method.loss(model, batch, out).total, F.cross_entropy(out.logits, split.labels)
    )


def test_three_epochs_train_with_finite_losses(tiny_synthetic, tmp_path) -> None:
    result = train_run(tiny_synthetic, "pmr", tiny_run_config(3), 0, tmp_path)
    assert len(result.history) == 3
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    assert all(row["train_loss"] >= row["train_task"] for row in result.history)


def test_regression_and_bad_config_are_refused(tiny_regression, tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("pmr", {}, tiny_regression.info)
    with pytest.raises(ConfigError, match="momentum"):
        create_method("pmr", {"momentum": 1.0}, tiny_synthetic.info)
