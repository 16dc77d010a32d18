"""MLflow tracking: the only module that imports mlflow.

Result files on disk are the source of truth; tracking is for browsing (``mlflow ui``). So every
call here is best effort: a tracking failure is retried, then reported as a warning, and never
loses or blocks a result. The default backend is an sqlite database at an *absolute* path in the
checkout (a relative URI silently loses runs made from temporary copies, e.g. ``dvc exp --queue``);
``MLFLOW_TRACKING_URI`` overrides it (e.g. a tracking server for cluster runs). The database must be
created once before parallel jobs start (:func:`init_store`; parallel first use corrupts it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

log = logging.getLogger(__name__)
T = TypeVar("T")
RUN_TAG = "mcr.run"  # "<dataset>/<method>/seed<seed>": joins an MLflow run to its result files
FINGERPRINT_TAG = "mcr.fingerprint"  # hash of the run's results: same results, same run
SUPERSEDED_TAG = "mcr.superseded_by"  # on an older run of the cell: the run that replaced it
ATTEMPTS = 3


def tracking_uri(repo_root: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute repo root>/mlflow.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(repo_root or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def _retry(what: str, action: Callable[[], T]) -> T | None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 -- tracking must never break a run
            if attempt == ATTEMPTS:
                log.warning("MLflow %s failed after %d attempts: %s", what, ATTEMPTS, exc)
                print(f"WARNING: MLflow {what} failed ({exc}); results on disk are intact")
                return None
            time.sleep(0.5 * 2**attempt)
    return None


def init_store(uri: str) -> None:
    """Create (and migrate) the tracking database once, and switch sqlite to WAL mode."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments(max_results=1)  # first access creates the schema
    if uri.startswith("sqlite:///"):
        with sqlite3.connect(uri[len("sqlite:///") :]) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent; 5x faster parallel logging


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def _metric_name(name: str) -> str:
    """MLflow metric names allow letters, digits and ``_-./ :``; brackets become dots."""
    return name.replace("[", ".").replace("]", "").replace("+", "_")


def log_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    history: Iterable[Mapping[str, float]],
    final_metrics: Mapping[str, float],
    artifacts: Iterable[str | Path] = (),
    documents: Mapping[str, Any] | None = None,
) -> str | None:
    """Log one finished run: params, per-epoch metrics (step = epoch), final metrics, files
    (``artifacts``) and JSON documents (``documents``: artifact file name -> content).

    One current run per cell (``mcr.run`` tag, dataset x method x seed). If a run with the same
    ``mcr.run`` and ``mcr.fingerprint`` tags exists, nothing is logged again and its id is
    returned: re-tracking unchanged results adds no duplicate. Otherwise the new run is logged and
    every other active run of the cell is tagged ``mcr.superseded_by`` and deleted -- MLflow's
    soft delete: hidden from the UI and searches, kept in the database, restorable with
    ``mlflow runs restore --run-id <id>``.
    Returns the run id, or None when tracking failed (after retries; results stay on disk).
    """

    def action() -> str:
        import mlflow
        from mlflow.entities import Metric, Param

        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        found = client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else client.create_experiment(experiment)
        query = " and ".join(f"tags.`{k}` = '{tags[k]}'" for k in (RUN_TAG, FINGERPRINT_TAG))
        existing = client.search_runs([exp_id], filter_string=query, max_results=1)
        if existing:
            run_id = existing[0].info.run_id
            supersede(client, exp_id, tags[RUN_TAG], run_id)
            return run_id
        run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [
            Metric(_metric_name(k), float(v), now, int(row["epoch"]))
            for row in history
            for k, v in row.items()
            if k != "epoch" and not math.isnan(v)
        ]
        metrics += [Metric(_metric_name(k), float(v), now, 0) for k, v in final_metrics.items()]
        flat = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limits
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        for start in range(0, len(flat), 100):
            client.log_batch(run_id, params=flat[start : start + 100])
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        for name, content in (documents or {}).items():
            client.log_dict(run_id, content, name)
        client.set_terminated(run_id)
        supersede(client, exp_id, tags[RUN_TAG], run_id)  # only once the new run is complete
        return run_id

    return _retry(f"logging of run {run_name}", action)


def supersede(client: Any, experiment_id: str, cell: str, current: str) -> None:
    """Tag and soft-delete every active run of ``cell`` other than ``current``."""
    older = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{cell}'")
    for run in older:
        if run.info.run_id != current:
            client.set_tag(run.info.run_id, SUPERSEDED_TAG, current)
            client.delete_run(run.info.run_id)


def results_fingerprint(
    history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], metrics: Mapping[str, Any]
) -> str:
    """A hash of what a run found, without its wall times: a rerun that reproduces the same
    numbers has the same fingerprint, so it is not logged again."""
    stable = {
        "history": [{k: v for k, v in row.items() if "seconds" not in k} for row in history],
        "summary": {k: v for k, v in summary.items() if k != "seconds"},
        "metrics": metrics,
    }
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def track_runs(
    dataset: str,
    run_dirs: Sequence[str | Path],
    repo_root: str | Path,
    out: str | Path,
    *,
    metrics_file: str | Path | None = None,
) -> dict[str, str | None]:
    """Log every finished run of a dataset to MLflow (experiment = dataset; run = method x seed).

    Runs are logged from their result files after evaluation, in one process per dataset: one
    MLflow start-up instead of one per training job, and the results on disk stay the only
    source of truth. A run's evaluation comes from ``metrics_file`` (the dataset's, written by
    the pipeline) or else from its own ``metrics.json`` (``mcr evaluate``). Unchanged runs are
    not logged twice (see ``log_run``).
    """
    uri = tracking_uri(repo_root)
    commit = git_commit()
    evaluated = {}
    if metrics_file is not None:
        for record in json.loads(Path(metrics_file).read_text())["runs"].values():
            evaluated[record["method"], record["seed"]] = record
    logged: dict[str, str | None] = {}
    for run_dir in map(Path, run_dirs):
        summary = json.loads((run_dir / "train_summary.json").read_text())
        method, seed = summary["method"], summary["seed"]
        if metrics_file is None:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        elif (method, seed) in evaluated:
            metrics = evaluated[method, seed]
        else:
            raise ValueError(f"{metrics_file} has no evaluation of {method} seed {seed}")
        tag = f"{dataset}/{method}/seed{seed}"
        params = {"dataset": dataset, "method": method, "seed": seed,
                  "method_config": summary["method_config"], "train": summary["train_config"]}  # fmt: skip
        final = {  # "final_": evaluated with the selected weights (history has per-epoch val_*)
            f"final_{split}_{k}": v
            for split in ("val", "test")
            for k, v in metrics[split].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        for split in ("val", "test"):
            for modality, values in metrics[split].get("modalities", {}).items():
                final.update({f"final_{split}_{k}.{modality}": v for k, v in values.items()
                              if isinstance(v, int | float)})  # fmt: skip
        files = [run_dir / "history.csv", run_dir / "train_summary.json"]
        history = _read_history(run_dir / "history.csv")
        fingerprint = results_fingerprint(history, summary, metrics)
        logged[tag] = log_run(
            uri,
            experiment=dataset,
            run_name=f"{method}-seed{seed}",
            tags={
                RUN_TAG: tag,
                FINGERPRINT_TAG: fingerprint,
                "git_commit": commit,
                "params_hash": params_hash(params),
                "snakemake.rule": "train_model",
                "snakemake.wildcards": f"dataset={dataset},method={method},seed={seed}",
                "best_epoch": str(summary["best_epoch"]),
            },
            params=params,
            history=history,
            final_metrics=final,
            artifacts=files,
            documents={"metrics.json": metrics},
        )
    Path(out).write_text(json.dumps({"tracking_uri": uri, "runs": logged}, indent=2) + "\n")
    return logged


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
