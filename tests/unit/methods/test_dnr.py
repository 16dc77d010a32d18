"""D&R: soft re-initialisation, purity, k-means, the diagnosis schedule, resume."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from mcr.config import ConfigError
from mcr.methods import create_method
from mcr.methods.dnr import (
    encoder_latents,
    kmeans,
    minmax_scale,
    purity,
    reinit,
    representation_purity,
)
from mcr.training import train_run
from tests.conftest import assert_resume_is_identical, build_method, tiny_run_config


def _trained_copy(encoder: nn.Module) -> nn.Module:
    """A copy whose parameters and BatchNorm running statistics moved away from the init."""
    moved = copy.deepcopy(encoder)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(torch.randn_like(p))
    moved.train()
    moved(torch.randn(16, 4) * 3 + 1)  # updates running_mean / running_var
    return moved


def test_reinit_blends_parameters_and_float_buffers() -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    init = {k: v.clone() for k, v in encoder.state_dict().items()}
    current = _trained_copy(encoder)
    before = {k: v.clone() for k, v in current.state_dict().items()}
    assert not torch.equal(before["1.running_mean"], init["1.running_mean"])

    reinit(current, init, 0.0)  # w = 0: nothing changes
    assert all(torch.equal(v, before[k]) for k, v in current.state_dict().items())

    reinit(current, init, 0.25)
    for k, v in current.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.25 * init[k] + 0.75 * before[k])
        else:  # num_batches_tracked is a counter, not a weight
            assert torch.equal(v, before[k])

    reinit(current, init, 1.0)  # w = 1: exactly the initial weights
    for k, v in current.state_dict().items():
        assert torch.equal(v, init[k]) or not v.is_floating_point(), k
    assert torch.equal(current[0].weight, init["0.weight"])  # the module's own parameter


def test_purity_hand_computed() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    clusters = torch.tensor([0, 0, 0, 1, 1, 1])
    # cluster 0 = {0, 0, 1} -> 2; cluster 1 = {1, 1, 2} -> 2; purity 4/6
    assert purity(labels, clusters) == pytest.approx(4 / 6)
    assert purity(labels, torch.zeros(6, dtype=torch.long)) == pytest.approx(3 / 6)
    assert purity(labels, torch.arange(6)) == 1.0  # one point per cluster


def test_minmax_scale() -> None:
    x = torch.tensor([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]])
    scaled = minmax_scale(x)
    torch.testing.assert_close(scaled[:, 0], torch.tensor([-1.0, 1.0, 0.0]))
    torch.testing.assert_close(scaled[:, 1], torch.tensor([-1.0, -1.0, -1.0]))  # constant
    torch.testing.assert_close(scaled[:, 2], torch.tensor([-1.0, 1.0, 0.0]))


def test_kmeans_recovers_separated_blobs_deterministically() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0], [8, 8, -8]])
    labels = torch.arange(4).repeat_interleave(25)
    x = centres[labels] + 0.5 * torch.randn(100, 3, generator=gen)
    order = torch.randperm(100, generator=gen)
    x, labels = x[order], labels[order]
    clusters = kmeans(x, 4, torch.Generator().manual_seed(1))
    assert purity(labels, clusters) == 1.0 and clusters.unique().numel() == 4
    again = kmeans(x, 4, torch.Generator().manual_seed(1))
    assert torch.equal(clusters, again)
    restarts = kmeans(x, 4, torch.Generator().manual_seed(2), restarts=3)
    assert purity(labels, restarts) == 1.0


def _move_encoders(model) -> None:
    with torch.no_grad():
        for p in model.encoders.parameters():
            p.add_(0.5 * torch.randn_like(p))


def test_diagnosis_only_on_schedule_and_at_most_reinit_num_times(tiny_synthetic) -> None:
    params = {"reinit_epoch": 2, "reinit_num": 2, "move_lambda": 20.0}
    method, model = build_method("dnr", params, tiny_synthetic)
    fired = []
    for epoch in range(10):
        _move_encoders(model)
        count = method.reinits
        method.on_epoch_start(epoch, model)
        if method.reinits > count:
            fired.append(epoch)
    assert fired == [2, 4]
    assert method.is_diagnosis_epoch(6) is False  # budget spent


def test_diagnosis_uses_each_modalitys_own_features_and_blends(tiny_synthetic) -> None:
    method, model = build_method("dnr", {"reinit_epoch": 1, "move_lambda": 5.0}, tiny_synthetic)
    _move_encoders(model)
    before = {m: copy.deepcopy(model.encoders[m].state_dict()) for m in model.modalities}
    method.on_epoch_start(1, model)
    for index, m in enumerate(model.modalities):
        gen = torch.Generator().manual_seed((0 * 1_000_003 + 1) * 101 + index)
        expected = []
        for split in (tiny_synthetic.train, tiny_synthetic.val):
            latents = encoder_latents(model_at(model, m, before[m]), m, split)
            expected.append(representation_purity(latents, split.labels, 5, gen, method.config))
        last = method.last[m]
        assert [last["purity_train"], last["purity_val"]] == pytest.approx(expected)
        assert last["gap"] == pytest.approx(abs(expected[0] - expected[1]))
        w = math.tanh(5.0 * last["gap"])
        assert last["weight"] == pytest.approx(w) and 0 < w < 1
        for k, v in model.encoders[m].state_dict().items():
            init = method.init_states[m][k]
            torch.testing.assert_close(v, w * init + (1 - w) * before[m][k])


def model_at(model, modality, state):
    """A copy of ``model`` whose ``modality`` encoder holds ``state``."""
    other = copy.deepcopy(model)
    other.encoders[modality].load_state_dict(state)
    return other


def test_train_run_with_reinit_every_epoch(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(3, dnr={"reinit_epoch": 1})
    result = train_run(tiny_synthetic, "dnr", config, 0, tmp_path / "run")
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    assert [row["train_reinits"] for row in result.history] == [0.0, 1.0, 2.0]
    assert "train_reinit_weight[m1]" not in result.history[0]
    for row in result.history[1:]:
        for m in ("m1", "m2"):
            w, gap = row[f"train_reinit_weight[{m}]"], row[f"train_purity_gap[{m}]"]
            assert w == pytest.approx(math.tanh(3.0 * gap), abs=1e-6)


def test_resume_recreates_the_initial_weights(tiny_synthetic, tmp_path) -> None:
    """The re-init at epoch 2 happens after the resume: it needs prepare's initial weights."""
    config = tiny_run_config(4, dnr={"reinit_epoch": 2, "move_lambda": 10.0})
    straight = assert_resume_is_identical(tiny_synthetic, "dnr", config, 5, tmp_path)
    assert straight.history[2]["train_reinits"] == 1.0


def test_resume_with_other_initial_weights_is_refused(tiny_synthetic) -> None:
    method, _ = build_method("dnr", {}, tiny_synthetic, seed=0)
    other, _ = build_method("dnr", {}, tiny_synthetic, seed=1)
    other.load_state_dict(other.state_dict())  # same init: fine
    with pytest.raises(ValueError, match="initial encoder weights differ"):
        other.load_state_dict(method.state_dict())


def test_refusals(tiny_regression, tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match="does not support regression"):
        create_method("dnr", {}, tiny_regression.info)
    for bad in ({"reinit_epoch": 0}, {"move_lambda": -1.0}, {"reinit_num": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            create_method("dnr", bad, tiny_synthetic.info)
