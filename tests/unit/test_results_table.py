"""The results table reads a dataset's metrics file (pipeline) and a run's own file (CLI) alike."""

from __future__ import annotations

import json

from mcr.report.tables import results_table


def record(method: str, seed: int, accuracy: float) -> dict:
    split = {"n": 10, "accuracy": accuracy, "macro_f1": accuracy / 2}
    return {"dataset": "d", "method": method, "seed": seed, "val": split, "test": split}


def test_dataset_and_run_files_give_one_row_per_run_and_split(tmp_path):
    dataset_file = tmp_path / "metrics.json"
    runs = {"joint/seed0": record("joint", 0, 0.5), "mcr/seed0": record("mcr", 0, 0.75)}
    dataset_file.write_text(json.dumps({"dataset": "d", "runs": runs}))
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(record("mcr", 1, 0.25)))
    table = results_table([dataset_file, run_file])
    assert len(table) == 3 * 2
    test = table[table["split"] == "test"].set_index(["method", "seed"])["accuracy"]
    assert test.to_dict() == {("joint", 0): 0.5, ("mcr", 0): 0.75, ("mcr", 1): 0.25}


def test_ceilings_add_an_unranked_row_and_a_computed_gap_note():
    import pandas as pd

    from mcr.report.build import ceiling_notes
    from mcr.report.tables import mean_std, table1_markdown

    rows = [
        {"dataset": d, "method": m, "seed": s, "split": "test", "n": 100, "accuracy": a}
        for d, m, s, a in [
            ("syn", "joint", 0, 0.80), ("syn", "joint", 1, 0.82),
            ("syn", "mcr", 0, 0.70), ("syn", "mcr", 1, 0.72),
            ("real", "joint", 0, 0.5), ("real", "joint", 1, 0.5),
        ]
    ]  # fmt: skip
    results = pd.DataFrame(rows)
    summary = mean_std(results, "accuracy")
    table = table1_markdown(summary, ["joint", "mcr"], {}, ceilings={"syn": 0.84})
    assert table.splitlines()[-1] == "| *Bayes optimum (known generator)* | – | *84.0* |"
    assert "**81.0 ± 1.4**" in table  # the ceiling is not ranked as a method
    (note, _) = ceiling_notes(results, summary, {"syn": 0.84})
    # best 81.0 - 84.0 = -3.0; SE = 100 * sqrt(0.84 * 0.16 / 100) = 3.67 -> within 2 SE
    assert "syn -3.0 (SE 3.7)" in note and "On 1 of 1 of these datasets" in note
    (note, _) = ceiling_notes(results, summary, {"syn": 0.99})  # SE 1.0, gap -18
    assert "No best method is within two standard errors" in note


def test_the_papers_number_and_our_difference_stand_beside_ours():
    import pandas as pd

    from mcr.report.tables import mean_std, table1_markdown

    rows = [{"dataset": "cremad", "method": "mcr", "seed": s, "split": "test", "n": 100,
             "accuracy": a} for s, a in ((0, 0.74), (1, 0.76))]  # fmt: skip
    summary = mean_std(pd.DataFrame(rows), "accuracy")
    table = table1_markdown(summary, ["mcr"], {}, paper={"cremad": {"mcr": "76.1 ± 1.6"}})
    assert "**75.0 ± 1.4** (76.1 ± 1.6; -1.1)" in table


def test_table_one_is_one_table_per_sweep_family_then_the_real_datasets():
    import pandas as pd

    from mcr.report.build import ReportConfig, table_per_family
    from mcr.report.tables import mean_std

    rows = [
        {"dataset": d, "method": "joint", "seed": 0, "split": "test", "n": 10, "accuracy": a}
        for d, a in [("avdigits", 0.9), ("synthetic_paper_r0", 0.8), ("synthetic_r0", 0.7),
                     ("synthetic_paper_r4", 0.6)]
    ]  # fmt: skip
    summary = mean_std(pd.DataFrame(rows), "accuracy")
    levels = {"synthetic_paper_r0": 0.0, "synthetic_paper_r4": 4.0, "synthetic_r0": 0.0}
    lines = table_per_family(
        summary, list(dict.fromkeys(summary["dataset"])), levels, ["joint"], {},
        ReportConfig(), {"synthetic_r0": 0.75},
    )  # fmt: skip
    headings = [line for line in lines if line.startswith("###")]
    assert headings == ["### synthetic_paper (U1/S levels)", "### synthetic (U1/S levels)",
                        "### Real datasets"]  # fmt: skip
    tables = "\n".join(lines).split("###")[1:]
    assert "| Method | synthetic_paper_r0 | synthetic_paper_r4 |" in tables[0]
    assert (
        "Bayes" not in tables[0] and "| *Bayes optimum (known generator)* | *75.0* |" in tables[1]
    )
    assert "| Method | avdigits |" in tables[2] and "Bayes" not in tables[2]
