"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mcr import metrics


def test_accuracy_and_macro_f1_by_hand() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 0])
    logits = torch.nn.functional.one_hot(preds, 3).float()
    assert metrics.accuracy(logits, labels) == pytest.approx(4 / 6)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3
    assert metrics.macro_f1(preds, labels, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # a class absent from labels and predictions is left out, not counted as F1 = 0
    assert metrics.macro_f1(preds, labels, 4) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_regression_metrics_by_hand() -> None:
    out, y = torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([2.0, -1.0, 0.0, -1.0])
    assert metrics.mean_absolute_error(out, y) == pytest.approx((1 + 1 + 0.5 + 4) / 4)
    # zero label excluded: signs agree on samples 0 and 1, disagree on 3
    assert metrics.binary_accuracy_nonzero(out, y) == pytest.approx(2 / 3)
    assert metrics.pearson_r(out, 2 * out + 1) == pytest.approx(1.0)
    assert metrics.pearson_r(out, -out) == pytest.approx(-1.0)
    assert metrics.pearson_r(out, torch.ones(4)) == 0.0
    assert math.isnan(metrics.binary_accuracy_nonzero(out, torch.zeros(4)))
