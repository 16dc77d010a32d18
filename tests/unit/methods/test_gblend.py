"""G-Blending: the weight formula by hand, the weighted loss, the re-estimation schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcr.config import ConfigError
from mcr.data.dataset import DatasetInfo
from mcr.methods import SetupContext, create_method
from mcr.methods.gblend import GBlendMethod, blend_weights
from mcr.training import predict, train_run
from tests.conftest import assert_resume_is_identical, build_method, first_batch, tiny_run_config


def test_weight_formula_hand_computed() -> None:
    start = {"fused": (1.0, 1.2), "a": (1.0, 1.5), "b": (1.0, 1.1)}
    end = {"fused": (0.5, 0.9), "a": (0.8, 1.4), "b": (0.6, 1.2)}
    w = blend_weights(start, end, previous={})
    # fused: dG 0.3, dO 0.4 - 0.2 = 0.2 -> 7.5;  a: dG 0.1, dO 0.6 - 0.5 -> 10;  b: dG < 0 -> 0
    assert w == pytest.approx({"fused": 7.5 / 17.5, "a": 10 / 17.5, "b": 0.0})
    assert sum(w.values()) == pytest.approx(1.0)


def test_non_positive_overfitting_change_is_floored_at_eps() -> None:
    start = {"fused": (1.0, 1.2), "a": (1.0, 1.5)}
    end = {"fused": (0.9, 1.0), "a": (0.8, 1.4)}  # fused: dG 0.2, dO 0.1 - 0.2 < 0
    w = blend_weights(start, end, previous={}, eps=1e-3)
    raw_fused, raw_a = 0.2 / 1e-3**2, 0.1 / 0.1**2
    assert w["fused"] == pytest.approx(raw_fused / (raw_fused + raw_a))
    assert w["a"] == pytest.approx(raw_a / (raw_fused + raw_a))


def test_no_improving_head_keeps_the_previous_weights() -> None:
    start = {"fused": (1.0, 1.0), "a": (1.0, 1.0)}
    worse = {"fused": (0.9, 1.1), "a": (0.8, 1.0)}
    previous = {"fused": 0.7, "a": 0.3}
    assert blend_weights(start, worse, previous) == previous
    nan = {"fused": (0.9, math.nan), "a": (0.8, 0.5)}
    assert blend_weights(start, nan, previous) == previous


@pytest.mark.parametrize("fixture, heads", [("tiny_synthetic", 3), ("tiny_synthetic3", 4)])
def test_weights_start_uniform(fixture, heads, request) -> None:
    method, _ = build_method("gblend", {}, request.getfixturevalue(fixture))
    assert len(method.weights) == heads
    assert all(w == pytest.approx(1 / heads) for w in method.weights.values())


def test_loss_is_the_weighted_sum_of_head_losses(tiny_synthetic) -> None:
    method, model = build_method("gblend", {}, tiny_synthetic)
    method.weights = {"fused": 0.5, "m1": 0.3, "m2": 0.2}
    batch = first_batch(tiny_synthetic, 48)
    out = model(batch.inputs)
    losses = method.loss(model, batch, out)
    y = batch.labels
    expected = (
        0.5 * F.cross_entropy(out.logits, y)
        + 0.3 * F.cross_entropy(out.unimodal_logits["m1"], y)
        + 0.2 * F.cross_entropy(out.unimodal_logits["m2"], y)
    )
    torch.testing.assert_close(losses.total, expected)
    assert float(losses.terms["w[m1]"]) == pytest.approx(0.3)
    assert float(losses.terms["uni[m2]"]) == pytest.approx(
        float(F.cross_entropy(out.unimodal_logits["m2"], y).detach())
    )
    losses.total.backward()  # the unimodal heads are trained
    assert model.unimodal_heads["m1"].weight.grad.abs().sum() > 0


def test_re_estimation_happens_only_at_super_epoch_ends(tiny_synthetic) -> None:
    method, _ = build_method("gblend", {"super_epoch": 3}, tiny_synthetic)
    gen = torch.Generator().manual_seed(1)
    points = []
    for e in range(7):  # val falls, train falls faster (overfitting grows), with noise
        noise = (torch.rand(3, 2, generator=gen) * 0.05).tolist()
        points.append(
            {
                k: (1.0 - 0.08 * e * (i + 1) + n[0], 1.3 - 0.03 * e * (3 - i) + n[1])
                for i, (k, n) in enumerate(zip(("fused", "m1", "m2"), noise, strict=True))
            }
        )
    uniform = dict(method.weights)
    seen = []
    for e, point in enumerate(points):
        changed = method.observe(
            e, {k: v[0] for k, v in point.items()}, {k: v[1] for k, v in point.items()}
        )
        seen.append((changed, dict(method.weights)))
    assert [c for c, _ in seen] == [False, False, True, False, False, True, False]
    first = blend_weights(points[0], points[2], uniform)  # window [0, 2]
    second = blend_weights(points[2], points[5], first)  # window [2, 5]
    assert first != uniform and second != first
    for e, (_, w) in enumerate(seen):
        expected = uniform if e < 2 else first if e < 5 else second
        assert w == pytest.approx(expected)
        assert sum(w.values()) == pytest.approx(1.0)


def test_epoch_end_measures_train_and_validation_losses(tiny_synthetic, monkeypatch) -> None:
    method, model = build_method("gblend", {}, tiny_synthetic)
    recorded = {}
    monkeypatch.setattr(method, "observe", lambda e, t, v: recorded.update(e=e, t=t, v=v))
    method.on_epoch_start(0, model)
    batches = [first_batch(tiny_synthetic, 64), first_batch(tiny_synthetic, 32)]
    expected_train = {"fused": 0.0, "m1": 0.0, "m2": 0.0}
    for batch in batches:
        out = model(batch.inputs)
        method.loss(model, batch, out)
        expected_train["fused"] += float(F.cross_entropy(out.logits, batch.labels).detach()) / 2
        for m in ("m1", "m2"):
            expected_train[m] += (
                float(F.cross_entropy(out.unimodal_logits[m], batch.labels).detach()) / 2
            )
    method.on_epoch_end(0, model, {})
    out = predict(model, tiny_synthetic.val.inputs, batch_size=50)
    y = tiny_synthetic.val.labels
    expected_val = {"fused": float(F.cross_entropy(out.logits, y))}
    expected_val.update(
        {m: float(F.cross_entropy(out.unimodal_logits[m], y)) for m in ("m1", "m2")}
    )
    assert recorded["e"] == 0
    assert recorded["t"] == pytest.approx(expected_train, rel=1e-5)
    assert recorded["v"] == pytest.approx(expected_val, rel=1e-5)


def test_state_dict_round_trip(tiny_synthetic) -> None:
    method, _ = build_method("gblend", {"super_epoch": 1}, tiny_synthetic)
    method.observe(0, {"fused": 1, "m1": 1, "m2": 1}, {"fused": 2, "m1": 2, "m2": 2})
    method.weights = {"fused": 0.6, "m1": 0.3, "m2": 0.1}
    fresh, _ = build_method("gblend", {"super_epoch": 1}, tiny_synthetic)
    fresh.load_state_dict(method.state_dict())
    assert fresh.weights == method.weights and fresh.window_start == method.window_start


@pytest.mark.parametrize("fixture", ["tiny_synthetic", "tiny_synthetic3"])
def test_train_run_is_finite_and_the_weights_move(fixture, request, tmp_path) -> None:
    data = request.getfixturevalue(fixture)
    config = tiny_run_config(3, gblend={"super_epoch": 1})
    result = train_run(data, "gblend", config, 0, tmp_path / "run")
    heads = ["fused", *data.info.modalities]
    for row in result.history:
        assert all(math.isfinite(v) for v in row.values())
        assert sum(row[f"train_w[{k}]"] for k in heads) == pytest.approx(1.0)
    uniform = [1 / len(heads)] * len(heads)
    for row in result.history[:2]:  # the first estimate ends epoch 1
        assert [row[f"train_w[{k}]"] for k in heads] == pytest.approx(uniform)
    assert [result.history[2][f"train_w[{k}]"] for k in heads] != pytest.approx(uniform)


def test_regression_trains(tiny_regression, tmp_path) -> None:
    config = tiny_run_config(2, gblend={"super_epoch": 1})
    result = train_run(tiny_regression, "gblend", config, 0, tmp_path / "run")
    assert all(math.isfinite(v) for row in result.history for v in row.values())


def test_resume_gives_the_uninterrupted_run(tiny_synthetic, tmp_path) -> None:
    config = tiny_run_config(4, gblend={"super_epoch": 1})
    straight = assert_resume_is_identical(tiny_synthetic, "gblend", config, 2, tmp_path)
    assert straight.history[-1]["train_w[fused]"] != straight.history[0]["train_w[fused]"]


def test_unsupported_settings_are_refused(tiny_synthetic) -> None:
    one = DatasetInfo("one", "classification", 3, ("a",), {"a": (4,)})
    with pytest.raises(ConfigError, match="needs >= 2 modalities, dataset has 1"):
        create_method("gblend", {}, one)
    with pytest.raises(ConfigError, match="super_epoch"):
        create_method("gblend", {"super_epoch": 0}, tiny_synthetic.info)
    method = create_method("gblend", {}, tiny_synthetic.info)
    assert isinstance(method, GBlendMethod)
    with pytest.raises(ValueError, match="validation split"):
        method.prepare(None, SetupContext(0, torch.device("cpu")))  # type: ignore[arg-type]
