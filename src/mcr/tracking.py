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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

log = logging.getLogger(__name__)
T = TypeVar("T")
RUN_TAG = "mcr.run"  # "<dataset>/<method>/seed<seed>": joins an MLflow run to its result files
FINGERPRINT_TAG = "mcr.fingerprint"  # hash of the run's results: same results, same run
SUPERSEDED_TAG = "mcr.superseded_by"  # on an older run of the cell: the run that replaced it
ATTEMPTS = 3
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as a run's MLflow dataset input: what it is and which content it had."""

    name: str
    digest: str  # sha256 of the split files' contents (first 16 hex digits)
    source: str  # the folder the splits were read from
    schema: dict[str, Any]  # task, classes, modalities and their shapes
    profile: dict[str, Any]  # rows per split


def dataset_record(folder: str | Path, info: Mapping[str, Any]) -> DatasetRecord | None:
    """The record of a dataset folder (``train/val/test.parquet``), or None without one."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    splits = [folder / f"{split}.parquet" for split in ("train", "val", "test")]
    if not all(path.is_file() for path in splits):
        return None
    digest = hashlib.sha256()
    for path in splits:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    rows = {path.stem: pq.ParquetFile(path).metadata.num_rows for path in splits}
    return DatasetRecord(str(info.get("name", folder.name)), digest.hexdigest()[:16],
                         str(folder.resolve()), dict(info), {"num_rows": rows})  # fmt: skip


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


def epoch_metric(key: str) -> str:
    """A history column as an MLflow metric (step = epoch): ``epoch/train_loss``. The prefix
    is a section of the run page, listed before ``final/`` (the selected weights' val/test
    metrics, one value each): the curves come first."""
    return f"epoch/{_metric_name(key)}"


@dataclass(frozen=True)
class RunContent:
    """What one finished run logs: params, per-epoch history (step = epoch), final metrics,
    files (``artifacts``), JSON documents (artifact file name -> content), the training's
    (start, end) in Unix time (``span``: the run's start and duration in the UI) and its
    dataset input."""

    tags: Mapping[str, str]
    params: Mapping[str, Any]
    history: Sequence[Mapping[str, float]]
    final_metrics: Mapping[str, float]
    artifacts: Sequence[str | Path] = ()
    documents: Mapping[str, Any] = field(default_factory=dict)
    span: tuple[float, float] | None = None
    dataset: DatasetRecord | None = None


def log_run(
    uri: str, experiment: str, run_name: str, content: RunContent, live_run_id: str | None = None
) -> str | None:
    """Log one finished run.

    One current run per cell (``mcr.run`` tag, dataset x method x seed). A run the training job
    logged live (``live_run_id``, :class:`LiveRun`) is completed in place: only the metric steps,
    params and files it lacks are added, so a server that went away mid-run loses nothing and
    nothing is logged twice. Else, if a run with the same ``mcr.run`` and ``mcr.fingerprint``
    tags exists, nothing is logged again and its id is returned: re-tracking unchanged results
    adds no duplicate. Otherwise the new run is logged. Then every other active run of the cell
    is tagged ``mcr.superseded_by`` and deleted -- MLflow's soft delete: hidden from the UI and
    searches, kept in the database, restorable with ``mlflow runs restore --run-id <id>``.
    Returns the run id, or None when tracking failed (after retries; results stay on disk).
    """
    tags = content.tags

    def action() -> str:
        import mlflow

        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        exp_id = experiment_id(client, experiment)
        live = _live_run(client, live_run_id, exp_id, tags[RUN_TAG]) if live_run_id else None
        if live is not None:
            if live.data.tags.get(FINGERPRINT_TAG) != tags[FINGERPRINT_TAG]:
                _complete(client, live, content)
            supersede(client, exp_id, tags[RUN_TAG], live.info.run_id)
            return live.info.run_id
        query = " and ".join(f"tags.`{k}` = '{tags[k]}'" for k in (RUN_TAG, FINGERPRINT_TAG))
        existing = client.search_runs([exp_id], filter_string=query, max_results=1)
        if existing:
            run_id = existing[0].info.run_id
            supersede(client, exp_id, tags[RUN_TAG], run_id)
            return run_id
        # the fingerprint is set last (_complete): a run cut off half-logged is not taken as done
        partial = {k: v for k, v in tags.items() if k != FINGERPRINT_TAG}
        span = content.span
        start = int(span[0] * 1000) if span and span[0] > 0 else None
        run = client.create_run(exp_id, start_time=start, run_name=run_name, tags=partial)
        _complete(client, run, content)
        supersede(client, exp_id, tags[RUN_TAG], run.info.run_id)  # once the new run is complete
        return run.info.run_id

    return _retry(f"logging of run {run_name}", action)


def experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created if missing (a parallel job may create it first), marked as
    a model-training experiment: MLflow 3's UI opens other experiments on its GenAI views
    (traces, "no data") instead of the runs table."""
    found = client.get_experiment_by_name(name)
    if found:
        if found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return found.experiment_id
    try:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    except Exception:  # created meanwhile by another job (re-raised if not)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _live_run(client: Any, run_id: str, experiment: str, cell: str) -> Any | None:
    """The live-logged run if it is still this cell's active run in ``experiment``."""
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 -- deleted for good, or another store
        return None
    same = run.info.experiment_id == experiment and run.data.tags.get(RUN_TAG) == cell
    return run if same and run.info.lifecycle_stage == "active" else None


def logged_steps(client: Any, run_id: str, keys: Iterable[str]) -> dict[str, set[int]]:
    """Metric name -> the steps already logged for it."""
    return {k: {m.step for m in client.get_metric_history(run_id, k)} for k in keys}


def _complete(client: Any, run: Any, content: RunContent) -> None:
    """Add to ``run`` what it lacks of ``content``, then mark it finished."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(epoch_metric(k), float(v), now, int(row["epoch"]))
        for row in content.history
        for k, v in row.items()
        if k != "epoch" and not math.isnan(v)
    ]
    metrics += [
        Metric(_metric_name(k), float(v), now, 0) for k, v in content.final_metrics.items()
    ]
    if run.data.metrics:  # logged live: keep what is there, add the missing steps
        have = logged_steps(client, run_id, {m.key for m in metrics} & set(run.data.metrics))
        metrics = [m for m in metrics if m.step not in have.get(m.key, set())]
    flat = [Param(k, v) for k, v in flatten(content.params).items() if k not in run.data.params]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limits
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    for start in range(0, len(flat), 100):
        client.log_batch(run_id, params=flat[start : start + 100])
    if (data := content.dataset) is not None and not run.inputs.dataset_inputs:
        record = Dataset(data.name, data.digest, "local", data.source,
                         json.dumps(data.schema), json.dumps(data.profile))  # fmt: skip
        context = InputTag("mlflow.data.context", "training")
        client.log_inputs(run_id, datasets=[DatasetInput(record, tags=[context])])
    for path in content.artifacts:
        client.log_artifact(run_id, str(path))
    for name, document in content.documents.items():
        client.log_dict(run_id, document, name)
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in content.tags.items()])
    span = content.span
    end = int(span[1] * 1000) if span and span[1] >= span[0] > 0 else None
    client.set_terminated(run_id, end_time=end)


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
    clock = ("seconds", "started_at", "finished_at")
    stable = {
        "history": [{k: v for k, v in row.items() if "seconds" not in k} for row in history],
        "summary": {k: v for k, v in summary.items() if k not in clock},
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
    data_folder: str | Path | None = None,
) -> dict[str, str | None]:
    """Log every finished run of a dataset to MLflow (experiment = dataset; run = method x seed).

    Runs are logged from their result files after evaluation, in one process per dataset: one
    MLflow start-up instead of one per training job, and the results on disk stay the only
    source of truth. A run's evaluation comes from ``metrics_file`` (the dataset's, written by
    the pipeline) or else from its own ``metrics.json`` (``mcr evaluate``). Unchanged runs are
    not logged twice (see ``log_run``). With ``data_folder`` (the dataset's splits) each run
    gets the dataset as its input; each run's selected checkpoint (``best.pt``) is an artifact.
    """
    uri = tracking_uri(repo_root)
    data = None
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
        tag = cell_name(dataset, method, seed)
        params = run_params(dataset, summary)
        final = {  # "final/": evaluated with the selected weights (epoch/val_*: every epoch)
            f"final/{split}_{k}": v
            for split in ("val", "test")
            for k, v in metrics[split].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        for split in ("val", "test"):
            for modality, values in metrics[split].get("modalities", {}).items():
                final.update({f"final/{split}_{k}.{modality}": v for k, v in values.items()
                              if isinstance(v, int | float)})  # fmt: skip
        files = [run_dir / "history.csv", run_dir / "train_summary.json", run_dir / "best.pt"]
        if data_folder is not None and data is None:
            data = dataset_record(data_folder, summary["dataset"])
        history = _read_history(run_dir / "history.csv")
        fingerprint = results_fingerprint(history, summary, metrics)
        content = RunContent(
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
            span=(summary.get("started_at", 0.0), summary.get("finished_at", 0.0)),
            dataset=data,
        )
        logged[tag] = log_run(uri, dataset, f"{method}-seed{seed}", content,
                              live_run_id=LiveRun.recorded_id(run_dir, uri))  # fmt: skip
    Path(out).write_text(json.dumps({"tracking_uri": uri, "runs": logged}, indent=2) + "\n")
    return logged


def cell_name(dataset: str, method: str, seed: int) -> str:
    """The ``mcr.run`` tag of a run: ``<dataset>/<method>/seed<seed>``."""
    return f"{dataset}/{method}/seed{seed}"


def run_params(dataset: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A run's MLflow params, from its ``train_summary.json`` (or the same fields at start)."""
    return {"dataset": dataset, "method": summary["method"], "seed": summary["seed"],
            "method_config": summary["method_config"], "train": summary["train_config"]}  # fmt: skip


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def is_server(uri: str) -> bool:
    """A tracking server (``http(s)://``), not a local store such as the sqlite file."""
    return uri.startswith(("http://", "https://"))


def live_tracking_uri(setting: bool | str) -> str | None:
    """Where training jobs log live (``tracking.live``), or None: ``auto`` is on exactly when
    the store is a tracking server (a cluster run), not for the checkout's sqlite file."""
    uri = tracking_uri()
    if setting == "auto":
        return uri if is_server(uri) else None
    return uri if setting is True else None


def server_problem(uri: str) -> str | None:
    """``None`` when ``uri`` is a local store or an HTTP server that answers, else why not."""
    if not is_server(uri):
        return None
    from mcr.tracking_server import reachable

    return reachable(uri)


class LiveRun:
    """Logs a training run to MLflow while it trains (``tracking.live``): params at start, each
    epoch's record (loss terms, validation metrics, step = epoch) as it is made.

    Best effort, as everything here: a server that is down or goes away costs one quick failed
    request (no retries, a 5 s timeout) at most every ``retry_after_s``, training goes on, and
    the pipeline's tracking step later completes the same run with what it lacks (its id is kept
    in the run folder, ``mlflow_run.json``). A resumed job reuses that run and skips the epochs
    already logged, so nothing appears twice; a run retrained with other settings (data, code,
    params) drops that record first, so its results never land in the old run.
    """

    FILE = "mlflow_run.json"

    def __init__(
        self, uri: str, dataset: str, run_dir: str | Path, retry_after_s: float = 30.0
    ) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.uri, self.dataset, self.run_dir = uri, dataset, Path(run_dir)
        self.retry_after_s = retry_after_s
        self.run_id: str | None = None
        self.logged_through = -1  # the last epoch the server has
        self._client: Any = None
        self._summary: dict[str, Any] | None = None
        self._attempt_key = ""  # which training of the run this is (its settings' hash)
        self._failed_at: float | None = None
        self._warned = False

    @classmethod
    def recorded_id(cls, run_dir: str | Path, uri: str) -> str | None:
        """The id a live-logging job recorded in ``run_dir`` for the store ``uri``, if any."""
        record = cls._read_record(Path(run_dir))
        return record.get("run_id") if record.get("tracking_uri") == uri else None

    def start(self, summary: Mapping[str, Any]) -> None:
        """Find (resumed job) or create the run and log its params, once the job is about to
        train; ``summary`` holds the ``train_summary.json`` fields known then (method, seed,
        configs). A server that is down now is tried again at the next epochs."""
        self._summary = dict(summary)
        self._attempt_key = params_hash(self._summary)
        record = self.run_dir / self.FILE
        if (
            record.is_file()
            and self._read_record(self.run_dir).get("attempt") != self._attempt_key
        ):
            record.unlink()  # a run trained with other settings: not this one's MLflow run
        self._attempt(self._start)

    @classmethod
    def _read_record(cls, run_dir: Path) -> dict[str, Any]:
        """``mlflow_run.json`` of ``run_dir`` ({} when missing or unreadable)."""
        try:
            return json.loads((run_dir / cls.FILE).read_text())
        except (OSError, ValueError):
            return {}

    def log_epoch(self, record: Mapping[str, float]) -> None:
        """The loop's epoch callback: log one history row."""
        epoch = int(record["epoch"])
        if self._summary is None or epoch <= self.logged_through:
            return

        def action() -> None:
            if self.run_id is None:
                self._start()
            if epoch > self.logged_through:
                self._log(epoch, record)

        self._attempt(action)

    def _attempt(self, action: Callable[[], None]) -> None:
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_after_s:
            return
        try:
            action()
            self._failed_at = None
        except Exception as exc:  # noqa: BLE001 -- tracking must never break a run
            self._failed_at = time.monotonic()
            if not self._warned:
                self._warned = True
                print(f"WARNING: live MLflow logging to {self.uri} failed ({exc}); training "
                      "goes on, the tracking step will log what is missing")  # fmt: skip

    def _start(self) -> None:
        import mlflow
        from mlflow.entities import Param

        # an explicit client: mlflow.set_tracking_uri would change the process's default store
        client = self._client = mlflow.MlflowClient(tracking_uri=self.uri)
        summary = self._summary or {}
        cell = cell_name(self.dataset, summary["method"], summary["seed"])
        exp_id = experiment_id(client, self.dataset)
        known = self.recorded_id(self.run_dir, self.uri)
        run = _live_run(client, known, exp_id, cell) if known else None
        if run is None or run.info.status != "RUNNING":
            run = client.create_run(
                exp_id, run_name=f"{summary['method']}-seed{summary['seed']}",
                tags={RUN_TAG: cell, "mcr.live": "true", "git_commit": git_commit()},
            )  # fmt: skip
        self.run_id = run.info.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / self.FILE).write_text(
            json.dumps(
                {"tracking_uri": self.uri, "run_id": self.run_id, "attempt": self._attempt_key}
            )
            + "\n"
        )
        history = client.get_metric_history(self.run_id, epoch_metric("train_loss"))
        self.logged_through = max((m.step for m in history), default=-1)
        flat = [Param(k, v) for k, v in flatten(run_params(self.dataset, summary)).items()
                if k not in run.data.params]  # fmt: skip
        for first in range(0, len(flat), 100):
            client.log_batch(self.run_id, params=flat[first : first + 100])

    def _log(self, epoch: int, record: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(epoch_metric(k), float(v), now, epoch) for k, v in record.items()
                   if k != "epoch" and not math.isnan(float(v))]  # fmt: skip
        self._client.log_batch(self.run_id, metrics=metrics)
        self.logged_through = epoch
