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
