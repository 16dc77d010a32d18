"""MLflow tracking from result files: logged once, and a failure never loses a result."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mcr import tracking
from mcr.evaluation import evaluate_run
from mcr.tracking import track_runs
from mcr.training import train_run
from tests.conftest import tiny_run_config


@pytest.fixture(scope="module")
def finished_run(tiny_synthetic, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "joint" / "seed0"
    train_run(tiny_synthetic, "joint", tiny_run_config(2), 0, run_dir)
    evaluate_run(run_dir, tiny_synthetic, out_path=run_dir / "metrics.json")
    return run_dir


def test_runs_are_logged_once_with_history_and_final_metrics(finished_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    tracking.init_store(uri)
    first = track_runs("synthetic", [finished_run], tmp_path, tmp_path / "a.json")
    again = track_runs("synthetic", [finished_run], tmp_path, tmp_path / "b.json")
    assert first == again and None not in first.values()  # unchanged results: same run
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == 1
        steps = db.execute(
            "select count(*) from metrics where key = 'epoch/val_accuracy'"
        ).fetchone()[0]
        test_acc = db.execute(
            "select value from metrics where key = 'final/test_accuracy'"
        ).fetchone()
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert steps == 2  # one point per epoch
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert test_acc[0] == pytest.approx(metrics["test"]["accuracy"])


def test_runs_take_their_metrics_from_the_dataset_file(finished_run, tmp_path, monkeypatch):
    """The pipeline writes one metrics file per dataset; tracking picks each run's record."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.tracking_uri(tmp_path)
    tracking.init_store(uri)
    record = json.loads((finished_run / "metrics.json").read_text())
    record["test"]["accuracy"] = 0.123  # tell the two sources apart
    dataset_file = tmp_path / "metrics.json"
    dataset_file.write_text(json.dumps({"dataset": "synthetic", "runs": {"joint/seed0": record}}))
    logged = track_runs(
        "synthetic", [finished_run], tmp_path, tmp_path / "a.json", metrics_file=dataset_file
    )
    assert None not in logged.values()
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        (value,) = db.execute(
            "select value from metrics where key = 'final/test_accuracy'"
        ).fetchone()
    assert value == pytest.approx(0.123)
    dataset_file.write_text(json.dumps({"dataset": "synthetic", "runs": {}}))
    with pytest.raises(ValueError, match=r"metrics.json has no evaluation of joint seed 0"):
        track_runs("synthetic", [finished_run], tmp_path, tmp_path / "b.json",
                   metrics_file=dataset_file)  # fmt: skip


def test_tracking_failure_is_reported_and_results_stay(
    finished_run, tmp_path, monkeypatch, capsys
):
    (tmp_path / "blocker").write_text("a file where the database folder would have to be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/blocker/mlflow.db")
    before = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    logged = track_runs("synthetic", [finished_run], tmp_path, tmp_path / "runs.json")
    assert list(logged.values()) == [None]
    assert "WARNING: MLflow logging of run joint-seed0 failed" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before
    assert json.loads((tmp_path / "runs.json").read_text())["runs"] == {
        "synthetic/joint/seed0": None
    }


def test_one_current_run_per_cell_and_wall_times_do_not_count(finished_run, tmp_path, monkeypatch):
    """Retrained with the same numbers (other wall times): the same MLflow run. With other
    numbers: a new run, and the old one tagged as superseded and soft-deleted."""
    import csv
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.init_store(tracking.tracking_uri(tmp_path))
    run_dir = tmp_path / "runs" / "joint" / "seed0"
    shutil.copytree(finished_run, run_dir)
    (first,) = track_runs("synthetic", [run_dir], tmp_path, tmp_path / "a.json").values()

    def rewrite_history(change) -> None:
        rows = list(csv.DictReader((run_dir / "history.csv").open()))
        for row in rows:
            change(row)
        with (run_dir / "history.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    rewrite_history(lambda row: row.update(train_seconds="9.99"))
    summary = json.loads((run_dir / "train_summary.json").read_text())
    clock = {"seconds": 123.0, "started_at": 1.0e9, "finished_at": 1.0e9 + 60}
    (run_dir / "train_summary.json").write_text(json.dumps({**summary, **clock}))
    (again,) = track_runs("synthetic", [run_dir], tmp_path, tmp_path / "b.json").values()
    assert again == first
    rewrite_history(lambda row: row.update(train_loss="0.5"))  # other results
    (third,) = track_runs("synthetic", [run_dir], tmp_path, tmp_path / "c.json").values()
    assert third not in (None, first)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        stages = dict(db.execute("select run_uuid, lifecycle_stage from runs").fetchall())
        (superseded_by,) = db.execute(
            "select value from tags where run_uuid = ? and key = ?",
            (first, tracking.SUPERSEDED_TAG),
        ).fetchone()
    assert stages == {first: "deleted", third: "active"} and superseded_by == third


def test_a_run_opens_as_a_model_training_run_with_its_real_span_dataset_and_checkpoint(
    finished_run, tiny_synthetic, tmp_path, monkeypatch
):
    """What the MLflow UI shows: the runs table (not the GenAI views), the training's own start
    and duration, the dataset as the run's input, the selected checkpoint among the files."""
    import mlflow

    from mcr.data.contract import write_dataset

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.tracking_uri(tmp_path)
    tracking.init_store(uri)
    folder = tmp_path / "features"
    write_dataset(tiny_synthetic, folder)
    (run_id,) = track_runs(
        "synthetic", [finished_run], tmp_path, tmp_path / "a.json", data_folder=folder
    ).values()
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    summary = json.loads((finished_run / "train_summary.json").read_text())
    assert 0 < summary["started_at"] < summary["finished_at"]
    assert run.info.start_time == int(summary["started_at"] * 1000)
    assert run.info.end_time == int(summary["finished_at"] * 1000)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (given,) = run.inputs.dataset_inputs
    rows = {s: len(getattr(tiny_synthetic, s)) for s in ("train", "val", "test")}
    assert json.loads(given.dataset.profile) == {"num_rows": rows}
    assert given.dataset.name == summary["dataset"]["name"] and len(given.dataset.digest) == 16
    files = {f.path for f in client.list_artifacts(run_id)}
    assert {"best.pt", "history.csv", "train_summary.json", "metrics.json"} <= files
    logged = Path(client.download_artifacts(run_id, "best.pt", str(tmp_path / "dl")))
    assert logged.read_bytes() == (finished_run / "best.pt").read_bytes()
