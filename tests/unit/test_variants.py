"""Method variants (the ablations): params, merging order, the DAG's run lists, the table."""

from __future__ import annotations

import pandas as pd
import pytest

from mcr.config import ConfigError
from mcr.training import RunConfig
from mcr.variants import parse_variants
from mcr.workflow.catalog import CATALOG_FILE, load_catalog
from mcr.workflow.layout import (
    method_train_params,
    pipeline_datasets,
    run_names,
    training_order,
    unimodal_inputs,
)
from tests.conftest import ROOT

VARIANTS = {
    "mcr_pre_no_con": {"method": "mcr_pre", "datasets": ["synthetic_paper_r*"],
                       "set": {"lambda_con": 0.0}},
    "mcr_ind": {"method": "mcr", "datasets": ["synthetic_r4"], "set": {"game": "independent"}},
}  # fmt: skip


@pytest.mark.parametrize(
    "variants,message",
    [
        ({"joint": {"method": "mcr", "datasets": ["x"]}}, r"variants.joint: the name is taken"),
        ({"unimodal_m1": {"method": "mcr", "datasets": ["x"]}}, r"the name is taken"),
        ({"Bad-name": {"method": "mcr", "datasets": ["x"]}}, r"lower-case letters"),
        ({"v": {"method": "mcr", "datasets": ["x"], "sets": {}}}, r"v.sets: unknown key"),
        ({"v": {"method": "unimodal", "datasets": ["x"]}}, r"v.method: 'unimodal' cannot be"),
        ({"v": {"datasets": ["x"]}}, r"v.method: expected the name of a registered method"),
        ({"v": {"method": "mcr", "datasets": []}}, r"v.datasets: expected a list"),
        ({"v": {"method": "mcr", "datasets": ["x"], "set": [1]}}, r"v.set: expected a mapping"),
    ],
)
def test_bad_variants_name_the_key_and_what_was_expected(variants, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_variants(variants, {"joint": {}, "mcr": {}})


def test_a_variants_params_are_its_methods_then_the_regimes_then_its_own() -> None:
    config = RunConfig.from_params(
        {
            "train": {
                "methods": {"mcr_pre": {"lambda_con": 0.5, "num_permutations": 4}},
                "datasets": {
                    "synthetic_paper_r*": {
                        "common": {"epochs": 7},
                        "methods": {"mcr_pre": {"num_permutations": 1024, "lambda_con": 2.0}},
                    }
                },
                "variants": VARIANTS,
            }
        }
    )
    train, block = config.for_method("mcr_pre_no_con", "synthetic_paper_r4")
    assert block == {"lambda_con": 0.0, "num_permutations": 1024}  # its own set wins
    assert train.epochs == 7
    assert config.method_name("mcr_pre_no_con") == "mcr_pre"
    assert config.method_name("mcr_pre") == "mcr_pre" and config.variant("mcr_pre") is None
    assert config.for_method("mcr_pre", "synthetic_paper_r4")[1]["lambda_con"] == 2.0


def test_variants_run_on_the_datasets_they_name_only() -> None:
    catalog = load_catalog(ROOT / CATALOG_FILE)
    sources = pipeline_datasets(
        {
            "synthetic": {"num_samples": 100},
            "synthetic_paper": {"num_samples": 100, "observed_dims": [100, 10]},
            "sweep": {"u1_to_s_ratio": [4], "paper_regime": [0, 4]},
        }
    )
    train = {"methods": {"unimodal": {}, "mcr": {}, "mcr_pre": {}}, "variants": VARIANTS}
    base = ["unimodal_m1", "unimodal_m2", "mcr", "mcr_pre"]
    assert run_names(train, sources["synthetic_r4"], catalog) == [*base, "mcr_ind"]
    assert run_names(train, sources["synthetic_paper_r0"], catalog) == [*base, "mcr_pre_no_con"]
    # a variant of mcr_pre starts from the unimodal runs, as mcr_pre does
    assert unimodal_inputs(train, "mcr_pre_no_con", ("m1", "m2"), catalog) == ["m1", "m2"]
    assert unimodal_inputs(train, "mcr_ind", ("m1", "m2"), catalog) == []
    # one process trains them in an order that has the unimodal runs first
    listed = {"methods": {"mcr_pre": {}, "joint": {}, "unimodal": {}}, "variants": VARIANTS}
    runs = run_names(listed, sources["synthetic_paper_r0"], catalog)
    assert runs == ["mcr_pre", "joint", "unimodal_m1", "unimodal_m2", "mcr_pre_no_con"]
    assert training_order(listed, runs, ("m1", "m2"), catalog) == [
        "joint", "unimodal_m1", "unimodal_m2", "mcr_pre", "mcr_pre_no_con"
    ]  # fmt: skip
    sliced = method_train_params(train, "mcr_pre_no_con")
    assert sliced["methods"] == {"mcr_pre": {}}
    assert sliced["variants"] == {"mcr_pre_no_con": VARIANTS["mcr_pre_no_con"]}
    typo = {**train, "variants": {"v": {"method": "mcr", "datasets": ["*"], "set": {"gam": 1}}}}
    with pytest.raises(ConfigError, match=r"train.variants.v.set.gam: not a mcr param"):
        run_names(typo, sources["synthetic_r4"], catalog)


def test_the_ablation_table_compares_every_row_with_the_reference() -> None:
    from mcr.report.ablations import ablation_markdown

    summary = pd.DataFrame(
        [
            ("a", "full", 80.0, 1.0), ("b", "full", 60.0, 2.0),
            ("a", "no_con", 78.0, 0.5), ("b", "no_con", 61.0, 0.0),
            ("a", "ind", 70.0, 3.0),  # not run on b: its delta is over a only
            ("c", "full", 50.0, 0.0),  # no variant on c: no column
        ],
        columns=["dataset", "method", "mean", "std"],
    )  # fmt: skip
    table = ablation_markdown(
        summary, {"loss": {"both": "full", "no L_Con": "no_con"}, "game": {"ind.": "ind"}}, "full"
    ).splitlines()
    assert table[0] == "| Ablation | Variant | a | b | Δ vs full (mean) |"
    assert table[2] == "| loss | both | 80.0 ± 1.0 | 60.0 ± 2.0 | (reference) |"
    assert table[3] == "|  | no L_Con | 78.0 ± 0.5 | 61.0 ± 0.0 | -0.5 |"  # (-2 + 1) / 2
    assert table[4] == "| game | ind. | 70.0 ± 3.0 | – | -10.0 |"
    assert ablation_markdown(summary, {"loss": {"both": "full"}}, "full") == ""
