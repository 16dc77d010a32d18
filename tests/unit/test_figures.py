"""The report's figures: one panel per sweep family / dataset, only that dataset's groups and
modalities, the compared methods drawn strong and named, legends outside the axes."""

from __future__ import annotations

import itertools

import matplotlib.image as mpimg
import pandas as pd

from mcr.report import figures

SWEEP_METHODS = ["unimodal_m1", "joint", "ensemble", "uni_pre_finetuned", "ogm", "mla", "mcr"]


def sweep_results() -> pd.DataFrame:
    """Two families, three levels, two seeds; ``mla`` beats ``ogm`` in ``b``, not in ``a``."""
    rows = []
    for family, level, method, seed in itertools.product(
        ("a", "b"), (0.0, 1.0, 4.0), SWEEP_METHODS, (0, 1)
    ):
        acc = 0.8 - 0.02 * level + 0.01 * SWEEP_METHODS.index(method) / 7
        if method == "mla":
            acc += 0.05 if family == "b" else -0.05
        rows.append({"dataset": f"{family}_r{level:g}", "method": method, "seed": seed,
                     "split": "test", "accuracy": acc + 0.001 * seed})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_sweep_has_a_panel_per_family_and_names_the_best_other_method(tmp_path):
    results = sweep_results()
    levels = {d: float(d.split("_r")[1]) for d in results["dataset"].unique()}
    ceilings = {d: 0.9 for d in levels}
    names = {"mcr": "MCR", "joint": "Joint Training", "mla": "MLA", "ogm": "OGM"}
    panels = figures.imbalance_sweep(results, levels, SWEEP_METHODS, names,
                                     tmp_path / "sweep.png", ceilings)  # fmt: skip
    assert [p["title"] for p in panels] == ["a: U2 fixed, U1/S grows", "b: U2 fixed, U1/S grows"]
    a, b = (p["legend"] for p in panels)
    assert "best other: OGM" in a and "best other: MLA" in b  # decided per family
    for legend in (a, b):
        assert {"MCR", "Joint Training", "ensemble", "uni_pre_finetuned"} <= set(legend)
        assert "Bayes optimum" in legend and legend[-1] == "every other method"
        assert not any("unimodal" in entry for entry in legend)  # grey, not named
    height, width, _ = mpimg.imread(tmp_path / "sweep.png").shape
    assert width > 1.6 * height  # two panels side by side


def test_best_other_method_skips_the_compared_and_the_unimodal_runs():
    stats = {m: pd.DataFrame({"mean": [v]}) for m, v in
             {"unimodal_m1": 99.0, "mcr": 95.0, "ogm": 80.0, "mla": 81.0}.items()}  # fmt: skip
    assert figures.best_other_method(stats, ("mcr",)) == "mla"
    assert figures.best_other_method({"mcr": stats["mcr"]}, ("mcr",)) is None


def panel_results() -> pd.DataFrame:
    """Two datasets with different modalities and different error-analysis groups."""
    rows = []
    for dataset, mods in (("two", ("x", "y")), ("three", ("p", "q", "r"))):
        for method in ("unimodal_" + mods[0], "joint", "mcr"):
            row = {"dataset": dataset, "method": method, "seed": 0, "split": "test"}
            for m in mods:
                row[f"{m}_in_model_accuracy"] = 0.5
            for k in range(len(mods) + 1):
                for group in itertools.combinations(mods, k):
                    name = "+".join(group) or "none"
                    row[f"ea_{name}_n"], row[f"ea_{name}_fused_accuracy"] = 10, 0.4
            rows.append(row)
    return pd.DataFrame(rows)


def test_each_dataset_panel_holds_only_its_own_modalities_and_groups(tmp_path):
    results = panel_results()
    methods = ["unimodal_x", "unimodal_p", "joint", "mcr"]
    use = figures.modality_utilisation(results, ["two", "three"], methods, {}, tmp_path / "u.png")
    assert [p["legend"] for p in use] == [["modality x", "modality y"],
                                          ["modality p", "modality q", "modality r"]]  # fmt: skip
    assert use[0]["xticks"] == ["unimodal_x", "joint", "mcr"]  # no other dataset's unimodal run
    errors = figures.error_analysis(results, ["two", "three"], methods, {}, tmp_path / "e.png")
    two, three = (p["legend"] for p in errors)
    assert two == [f"unimodal right: {g} (n ≈ 10)" for g in ("x+y", "x", "y", "none")]
    assert len(three) == 8 and three[0].startswith("unimodal right: p+q+r")
    assert three[-1].startswith("unimodal right: none")
    assert not any("x" in entry.split("(")[0] for entry in three)
    assert errors[0]["xticks"] == ["joint", "mcr"]  # unimodal runs are the reference, not bars
    image = mpimg.imread(tmp_path / "e.png")
    assert image.shape[0] > 0.6 * image.shape[1]  # two panels stacked, not side by side
