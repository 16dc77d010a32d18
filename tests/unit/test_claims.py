"""The claims check: ranks, paired differences and p-values on hand-made results."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mcr.report.claims import Comparison, check_claims, claims_markdown, paired


def results(rows: dict[str, list[float]], weak: dict[str, list[float]] | None = None):
    """Test-split rows: method -> accuracy per seed; ``weak`` -> m2 in-model accuracy."""
    out = []
    for method, values in rows.items():
        for seed, acc in enumerate(values):
            row = {"dataset": "d", "method": method, "seed": seed, "split": "test",
                   "accuracy": acc, "m2_in_model_accuracy": (weak or {}).get(method, [None] * 3)[seed]}  # fmt: skip
            out.append(row)
            out.append({**row, "split": "val", "accuracy": 1.0})  # never used
    return pd.DataFrame(out)


def test_paired_t_test_hand_computed() -> None:
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.4641,
    # two-sided p with 2 degrees of freedom = 1 - 3.4641 / sqrt(3.4641^2 + 2) = 0.0742
    c = paired(pd.Series([0.81, 0.82, 0.83]), pd.Series([0.80, 0.80, 0.80]))
    assert c.difference == pytest.approx(0.02) and c.pairs == 3
    t = 0.02 / (0.01 / math.sqrt(3))
    assert c.t_pvalue == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-4)
    assert c.wilcoxon_pvalue == pytest.approx(0.25)  # 3 pairs, all positive: 2/8
    assert c.verdict(0.05) == "not significant" and c.verdict(0.1) == "holds"
    assert Comparison(-0.01, 0.001, 0.25, 3).verdict(0.05) == "does not hold"
    assert paired(pd.Series([0.8]), pd.Series([0.7], index=[5])).verdict(0.05) == "n/a"


def test_rank_ensemble_best_other_and_weak_modality() -> None:
    frame = results(
        {
            "unimodal_m1": [0.70, 0.71, 0.72],
            "unimodal_m2": [0.50, 0.52, 0.51],  # m2 is the weak modality
            "ensemble": [0.80, 0.80, 0.80],
            "joint": [0.78, 0.79, 0.77],
            "mlb": [0.86, 0.87, 0.88],  # the best: MCR ranks 2nd of 4 multimodal methods
            "mcr": [0.85, 0.85, 0.85],
        },
        weak={"mcr": [0.50, 0.52, 0.54], "joint": [0.30, 0.30, 0.30]},
    )
    row = check_claims(frame).iloc[0]
    assert row["mcr_rank"] == 2 and row["methods"] == 4
    assert row["vs_ensemble_diff"] == pytest.approx(0.05) and math.isnan(row["vs_ensemble_t_p"])
    assert row["vs_ensemble_verdict"] == "not significant"  # constant difference: no variance
    assert row["best_other"] == "mlb" and row["vs_best_other_verdict"] == "does not hold"
    assert row["weak_modality"] == "m2" and row["weak_vs_joint_diff"] == pytest.approx(0.22)
    assert row["weak_vs_joint_verdict"] == "holds"
    text = claims_markdown(check_claims(frame), {"mlb": "MLB"})
    assert "| d | 2 of 4 |" in text and "MLB: -2.0" in text and "m2: +22.0" in text
    assert "significantly best on 0 of 1 datasets" in text


def test_datasets_without_mcr_are_skipped() -> None:
    frame = results({"joint": [0.5, 0.6, 0.7], "ensemble": [0.6, 0.6, 0.6]})
    assert check_claims(frame).empty
    assert "no claims to check" in claims_markdown(check_claims(frame), {})


def test_mcr_as_the_paper_ran_it_is_compared_with_the_same_initialisation() -> None:
    frame = results(
        {
            "unimodal_m1": [0.70, 0.71, 0.72],
            "unimodal_m2": [0.50, 0.52, 0.51],
            "ensemble": [0.80, 0.80, 0.80],
            "joint": [0.78, 0.79, 0.77],
            "uni_pre_finetuned": [0.82, 0.83, 0.81],
            "mcr": [0.81, 0.80, 0.82],
            "mcr_pre": [0.90, 0.92, 0.91],  # best overall, but MCR is not its own "best other"
        },
        weak={"mcr": [0.50, 0.52, 0.54], "joint": [0.30, 0.30, 0.30]},
    )
    row = check_claims(frame).iloc[0]
    assert row["best_other"] == "uni_pre_finetuned"
    assert row["pre_vs_uni_pre_diff"] == pytest.approx(0.09)
    assert row["pre_vs_uni_pre_verdict"] == "holds"  # t-test over the 3 seeds: p ~ 0.005
    text = claims_markdown(check_claims(frame), {})
    assert "MCR-pre − Uni-Pre Finetuned |" in text and "| +9.0 (t p=" in text
