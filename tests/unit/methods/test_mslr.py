"""MSLR: 1 until the window fills, c0 * last / mean afterwards, real optimiser learning rates."""

from __future__ import annotations

import math

import pytest
import torch

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.mslr import mslr_multiplier
from mcr.training import TrainConfig, train_run
from mcr.training.checkpoint import load
from mcr.training.loop import parameter_groups, set_learning_rates
from tests.conftest import assert_resume_is_identical, build_method, first_batch, tiny_run_config


def _end_epochs(method, model, accuracies: list[dict[str, float]]) -> None:
    for epoch, acc in enumerate(accuracies):
        method.on_epoch_end(epoch, model, {f"in_model_accuracy[{m}]": a for m, a in acc.items()})


ACCS = [{"m1": 0.5, "m2": 0.2}, {"m1": 0.6, "m2": 0.3}, {"m1": 0.7, "m2": 0.1}]


def test_multiplier_function_hand_computed() -> None:
    assert mslr_multiplier([0.4, 0.5], memory=3, initial=0.7) == 1.0  # K - 1 epochs: 1
    assert mslr_multiplier([0.4, 0.5, 0.9], 3, 0.7) == pytest.approx(0.7 * 0.9 / 0.6)
    assert mslr_multiplier([0.1, 0.4, 0.5, 0.9], 3, 1.3) == pytest.approx(1.3 * 0.9 / 0.6)
    assert mslr_multiplier([0.0, 0.0], 2, 1.3) == 1.0  # zero mean guarded


def test_one_until_the_window_fills_then_hand_computed(tiny_synthetic) -> None:
    params = {"memory": 3, "initial_multipliers": [0.7, 1.3]}
    method, model = build_method("mslr", params, tiny_synthetic)
    assert method.lr_multiplier("m1") == method.lr_multiplier("m2") == 1.0
    _end_epochs(method, model, ACCS[:2])  # exactly K - 1 epochs of history
    assert method.lr_multiplier("m1") == method.lr_multiplier("m2") == 1.0
    _end_epochs(method, model, ACCS[2:])
    assert method.lr_multiplier("m1") == pytest.approx(0.7 * 0.7 / 0.6)
    assert method.lr_multiplier("m2") == pytest.approx(1.3 * 0.1 / 0.2)
    assert method.lr_multiplier("shared") == 1.0
    batch = first_batch(tiny_synthetic)
    terms = method.loss(model, batch, model(batch.inputs)).terms
    assert float(terms["lr_mult[m1]"]) == pytest.approx(0.7 * 0.7 / 0.6)
    assert float(terms["lr_mult[m2]"]) == pytest.approx(1.3 * 0.1 / 0.2)


def test_optimizer_groups_get_the_multipliers(tiny_synthetic) -> None:
    params = {"memory": 2, "initial_multipliers": [2.0, 3.0]}
    method, model = build_method("mslr", params, tiny_synthetic)
    optimizer = torch.optim.Adam(parameter_groups(model, method), lr=1e-3)
    _end_epochs(method, model, [{"m1": 0.5, "m2": 0.0}, {"m1": 0.25, "m2": 0.0}])
    set_learning_rates(optimizer, method, TrainConfig(lr=1e-3), step=0, total=10)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["m1"] == pytest.approx(1e-3 * 2 * 0.25 / 0.375)
    assert lrs["m2"] == pytest.approx(1e-3)  # zero mean accuracy: guarded to 1
    assert lrs["shared"] == pytest.approx(1e-3)


def test_state_round_trip(tiny_synthetic) -> None:
    params = {"memory": 2, "initial_multipliers": [0.9, 1.1]}
    method, model = build_method("mslr", params, tiny_synthetic)
    _end_epochs(method, model, ACCS)
    state = method.state_dict()
    fresh, _ = build_method("mslr", params, tiny_synthetic)
    fresh.load_state_dict(state)
    assert fresh.history == method.history
    assert fresh.multipliers == method.multipliers
    assert fresh.lr_multiplier("m1") == pytest.approx(0.9 * 0.7 / 0.65)
    state["history"]["m1"].append(0.0)  # the copy is independent of the method's lists
    assert len(method.history["m1"]) == 3


def test_train_run_changes_the_optimizer_learning_rates(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(3, mslr={"memory": 1, "initial_multipliers": [0.5, 2.0]})
    result = train_run(tiny_synthetic, "mslr", config, seed=0, out_dir=tmp_path)
    history = result.history
    assert all(math.isfinite(row["train_loss"]) for row in history)
    # memory 1: c = c0 * acc / acc = c0 from the second epoch on (if acc > 0)
    assert [row["train_lr_mult[m1]"] for row in history] == pytest.approx([1.0, 0.5, 0.5])
    assert [row["train_lr_mult[m2]"] for row in history] == pytest.approx([1.0, 2.0, 2.0])
    lrs = {
        g["name"]: g["lr"] for g in load(tmp_path / "last.pt")["optimizer_state"]["param_groups"]
    }
    assert lrs == pytest.approx({"m1": 0.5e-3, "m2": 2e-3, "shared": 1e-3})


def test_train_run_multiplier_follows_validation_accuracy(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(4, mslr={"memory": 2, "initial_multipliers": [0.8, 1.2]})
    history = train_run(tiny_synthetic, "mslr", config, seed=1, out_dir=tmp_path).history
    for m, c0 in (("m1", 0.8), ("m2", 1.2)):
        acc = [row[f"val_in_model_accuracy[{m}]"] for row in history]
        expected = [1.0, 1.0] + [c0 * acc[e - 1] / ((acc[e - 2] + acc[e - 1]) / 2) for e in (2, 3)]
        assert [row[f"train_lr_mult[{m}]"] for row in history] == pytest.approx(expected)
    # and the state that would resume the run holds the same history
    state = load(tmp_path / "last.pt")["method_state"]
    assert state["history"]["m1"] == pytest.approx(
        [row["val_in_model_accuracy[m1]"] for row in history]
    )


def test_resume_continues_identically(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(4, mslr={"memory": 2, "initial_multipliers": [0.8, 1.2]})
    straight = assert_resume_is_identical(tiny_synthetic, "mslr", config, 0, tmp_path)
    assert len({r["train_lr_mult[m1]"] for r in straight.history}) > 1


def test_wrong_number_of_initial_multipliers_is_refused(tiny_synthetic) -> None:
    with pytest.raises(
        ConfigError, match=r"expected 2 values, one per modality in the order m1, m2"
    ):
        create_method("mslr", {"initial_multipliers": [1.0, 1.0, 1.0]}, tiny_synthetic.info)
    with pytest.raises(ConfigError, match="memory=0: expected >= 1"):
        create_method("mslr", {"memory": 0}, tiny_synthetic.info)


def test_regression_is_refused(tiny_regression) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("mslr", {}, tiny_regression.info)
