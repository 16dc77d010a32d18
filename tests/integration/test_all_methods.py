"""Every registered strategy trains on the synthetic set, evaluates, and resumes bit-identically.

Methods that start from unimodal runs (ensemble, uni-pre) are covered in ``test_training``; the
per-method property tests live in ``tests/unit/methods``.
"""

from __future__ import annotations

import math

import pytest

from mcr.evaluation import evaluate_run
from mcr.methods import METHODS, uses_unimodal_runs
from mcr.training import load_model, predict
from tests.conftest import assert_resume_is_identical, tiny_run_config

STANDALONE = sorted(
    ("unimodal_m1" if name == "unimodal" else name)
    for name in METHODS
    if name == "unimodal" or not uses_unimodal_runs(name, {})
)


@pytest.mark.parametrize("name", STANDALONE)
def test_trains_evaluates_and_resumes_identically(name, tiny_synthetic, tmp_path):
    straight = assert_resume_is_identical(tiny_synthetic, name, tiny_run_config(4), 3, tmp_path)
    assert len(straight.history) == 4
    assert all(math.isfinite(v) for row in straight.history for v in row.values())
    metrics = evaluate_run(tmp_path / "straight", tiny_synthetic)["test"]
    assert metrics["accuracy"] > 0.25  # chance is 0.2; four tiny epochs
    # the checkpoint rebuilds the method's own model (fusion head included)
    logits = predict(load_model(tmp_path / "straight"), tiny_synthetic.test.inputs).logits
    assert logits.shape == (len(tiny_synthetic.test), tiny_synthetic.info.num_outputs)


def test_every_registered_method_is_covered_somewhere():
    from tests.integration.test_training import CONSUMERS

    covered = set(STANDALONE) | set(CONSUMERS)
    assert {("unimodal_m1" if n == "unimodal" else n) for n in METHODS} == covered


def test_refusals_follow_the_papers_marks_and_happen_at_configuration():
    """Table 1: x = not applicable to regression, (x) = not to three modalities. PMR, MLA and
    InfoReg are defined on class probabilities; they refuse regression too. The sets are the
    paper's marks (an outside fact), checked against the methods' declared refusals; the DAG's
    copy of the declarations is checked in tests/unit/test_schemas.py."""
    from mcr.config import ConfigError
    from mcr.data.dataset import DatasetInfo
    from mcr.methods import create_method

    shapes = {m: (3,) for m in "abc"}
    regression = DatasetInfo("reg", "regression", 1, ("a", "b"), shapes)
    three = DatasetInfo("three", "classification", 4, ("a", "b", "c"), shapes)

    def refuses(name, info):
        try:
            create_method(name, {}, info)
        except ConfigError as exc:
            assert f"on dataset {info.name!r}" in str(exc)
            return True
        return False

    names = sorted(n for n in METHODS if n != "unimodal")
    assert {n for n in names if refuses(n, regression)} == {
        "mslr", "mmcosine", "reconboost", "dnr", "pmr", "mla", "inforeg"
    }  # fmt: skip
    assert {n for n in names if refuses(n, three)} == {"ogm", "ogm_ge"}
