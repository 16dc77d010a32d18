# Everything that is not a rule: params validation, the dataset/method/seed tables, input
# functions, and the code each stage depends on (a code edit reruns the stage's jobs).
# Torch-free: the DAG is laid out by mcr.workflow.layout from the params and the generated
# method catalog (workflow/schemas/methods.schema.json); only the jobs import torch.
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from mcr.config import SECTIONS, ConfigError, dataset_override, load_params
from mcr.tracking import init_store, server_problem, tracking_uri
from mcr.workflow.catalog import CATALOG_FILE, StaleCatalogError, load_catalog
from mcr.workflow.params_schema import schema_errors
from mcr.workflow.layout import (
    dataset_modalities,
    method_train_params,
    pipeline_datasets,
    training_order,
    raw_sources,
    run_names,
    skipped_benchmarks,
    unimodal_inputs,
)

PYTHON = sys.executable  # the interpreter running Snakemake (the project's .venv)


def method_catalog():
    """The generated method catalog; regenerated first when a method's source changed (an
    added or edited method needs no manual step before the DAG sees it)."""
    try:
        return load_catalog(CATALOG_FILE)
    except StaleCatalogError as exc:
        logger.warning(f"{exc}: regenerating it now")
        subprocess.run([PYTHON, "workflow/tools/method_schema.py"], check=True)
        return load_catalog(CATALOG_FILE)


CATALOG = method_catalog()

# Params overlays given with --configfile (e.g. the quick profile's params.yaml) change the
# config this DAG is built from; the job scripts read the params files themselves, so every
# script also gets the overlays, later files winning. --config values cannot be passed on that
# way: refuse them rather than run jobs on other values than the DAG tracks.
OVERLAYS = "".join(
    f" --params {os.path.relpath(f)}" for f in workflow.config_settings.configfiles
)
if set(workflow.config_settings.config or {}) & set(SECTIONS):
    raise WorkflowError(
        "--config cannot override data/train/report params (the job scripts read the params "
        "files): put the values in a YAML file and pass it with --configfile"
    )
# The DAG reads the params as the jobs do (mcr.config.load_params): Snakemake's YAML 1.1 reading
# makes `lr: 1e-3` a string, and it accepts any top-level key (`trian:`), which would then be
# silently ignored.
try:
    PARAMS = load_params(
        *(f"params/{s}.yaml" for s in SECTIONS), *workflow.config_settings.configfiles
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
config.update({section: PARAMS.get(section, {}) for section in SECTIONS})
_errors = [
    line
    for stem in SECTIONS
    for line in schema_errors(
        config[stem], stem, Path(workflow.basedir) / "workflow/schemas"
    )
]
if _errors:
    raise WorkflowError(
        "the params do not match workflow/schemas (one line per key):\n"
        + "\n".join(_errors)
    )
for _stem in SECTIONS:  # Snakemake's validate fills in the declared defaults
    validate(config[_stem], schema=f"../schemas/{_stem}.schema.yaml")
# Compute jobs get OMP_NUM_THREADS={threads} (1): torch's default of one thread per core
# oversubscribes the CPU when jobs run side by side -- measured 5.5x slower for two parallel
# training jobs on 2 cores (30.6 s vs 5.6 s), with identical results.
try:
    DATASETS = pipeline_datasets(config["data"])
    MODALITIES = {name: dataset_modalities(source) for name, source in DATASETS.items()}
except ConfigError as exc:  # one line naming the params key, not a traceback
    raise WorkflowError(str(exc)) from None
for _line in skipped_benchmarks(config["data"]):
    logger.info(_line)
if not DATASETS:
    raise WorkflowError(
        "no dataset to run: the params switch every dataset off (a paper profile runs only its "
        "benchmark: set data.benchmarks.<name>.root in params/data.yaml)"
    )
# The paper's benchmarks: media caches, ResNet-18 encoders. Their extraction uses every core;
# their training jobs ask for a GPU when the run declares GPUs (--resources gpu=N).
BENCHMARK_DATASETS = {name for name, source in DATASETS.items() if source.benchmark}
_gpus = workflow.global_resources.get("gpu")
GPU_PER_BENCHMARK_JOB = 1 if int(getattr(_gpus, "value", _gpus) or 0) >= 1 else 0
for _name in sorted(BENCHMARK_DATASETS):
    _encoders = ((config["train"]["model"].get("datasets") or {}).get(_name) or {}).get(
        "encoders"
    ) or {}
    if set(MODALITIES[_name]) - set(_encoders):
        raise WorkflowError(
            f"data.benchmarks.{_name} is set, but train.model.datasets.{_name}.encoders does "
            f"not name an encoder for {sorted(set(MODALITIES[_name]) - set(_encoders))}: pass "
            f"--configfile params/paper/{_name}.yaml (the paper's settings) or set them"
        )
RUN_NAMES = {
    name: run_names(config["train"], source, CATALOG)
    for name, source in DATASETS.items()
}
SEEDS = list(config["train"]["seeds"])
# The generated datasets' runs are small (a second to a few seconds a seed) while a job's start-up
# -- Python, torch, the compiler stack its optimiser imports -- costs about 5.5 s: every generated
# dataset (the synthetic sweeps, avdigits, mfeat) trains its whole run list in one job (rule
# train_dataset_<name>); the benchmarks and folders, whose runs are long and may each want a GPU,
# one job per method (rule train_model).
ONE_JOB_DATASETS = [n for n, s in DATASETS.items() if s.generator and RUN_NAMES[n]]
OTHER_DATASETS = [n for n in DATASETS if n not in ONE_JOB_DATASETS]
RAW_SOURCES = raw_sources(config["data"])
RAW = "data/raw/{source}"
FEATURES = "data/features/{dataset}"
RUN = "data/runs/{dataset}/{method}/seed{seed}"
SPLIT_FILES = ("train.parquet", "val.parquet", "test.parquet")


def run_methods(dataset):
    """Registry names of every run on ``dataset`` (``unimodal`` becomes one per modality;
    methods that do not apply to the dataset are left out)."""
    return RUN_NAMES[dataset]


def one_of(names):
    """A wildcard constraint matching exactly these names (one that matches none if empty)."""
    return "|".join(re.escape(n) for n in names) or "no-such-name"


def dataset_rule_name(dataset):
    """The training rule of a generated dataset (``train_dataset_synthetic_paper_r0_5``)."""
    return "train_dataset_" + re.sub(r"\W", "_", dataset)


def dataset_run_files(dataset, name):
    """``name`` in every run folder of ``dataset`` (every method, every seed)."""
    return [
        f"data/runs/{dataset}/{m}/seed{s}/{name}"
        for m in run_methods(dataset)
        for s in SEEDS
    ]


wildcard_constraints:
    dataset="|".join(DATASETS) or "no-dataset",
    source="|".join(RAW_SOURCES) or "no-source",
    method="[a-z0-9_]+",
    seed=r"\d+",


def dataset_params(dataset):
    """The params key (and value) a dataset is built from: a change reruns only its jobs."""
    key = DATASETS[dataset].params_key
    value = config
    for part in key.split("."):
        value = value[part]
    return {key: value}


def method_key(method):
    return CATALOG.split(method)[0]


def tracked_train_params(method, dataset):
    """The params keys a run of ``method`` (or variant) on ``dataset`` reads (seeds excluded: a
    new seed only adds jobs). Of ``train.datasets`` only the regime matching the dataset is
    compared, so editing one regime reruns only its datasets (DVC, keyed by section, reruns
    them all)."""
    sliced = method_train_params(config["train"], method_key(method))
    return tracked_slice(sliced, dataset)


def tracked_dataset_params(dataset):
    """The params keys the runs of a whole dataset read (rule train_dataset_<name>): editing one
    method's block reruns the job, which retrains that method's runs and resumes the others
    as finished (their settings did not change)."""
    train = config["train"]
    sliced = method_train_params(train, method_key(run_methods(dataset)[0]))
    for method in run_methods(dataset):
        part = method_train_params(train, method_key(method))
        sliced["methods"].update(part["methods"])
        sliced.setdefault("variants", {}).update(part.get("variants", {}))
    return tracked_slice(sliced, dataset)


def tracked_slice(sliced, dataset):
    """``method_train_params`` as Snakemake's tracked params (one key per method block)."""
    return {
        "train.common": sliced["common"],
        "train.model": sliced["model"],
        **{f"train.methods.{k}": block for k, block in sliced["methods"].items()},
        **{
            f"train.variants.{k}": block
            for k, block in sliced.get("variants", {}).items()
        },
        "train.datasets": dataset_override(sliced["datasets"], dataset),
    }


def unimodal_modalities(wildcards):
    """Modalities whose unimodal runs a method starts from (empty for most methods)."""
    return unimodal_inputs(
        config["train"], wildcards.method, MODALITIES[wildcards.dataset], CATALOG
    )


def unimodal_checkpoints(wildcards):
    """The unimodal runs' checkpoints a method needs, every seed (a real DAG edge)."""
    return [
        f"data/runs/{wildcards.dataset}/unimodal_{m}/seed{s}/best.pt"
        for m in unimodal_modalities(wildcards)
        for s in SEEDS
    ]


def code(*modules):
    """Library files a stage imports, so editing them reruns the stage (Snakemake and DVC)."""
    files = ["src/mcr/__init__.py", "src/mcr/config.py", "src/mcr/registry.py"]
    for module in modules:
        path = Path("src/mcr") / module
        files += sorted(map(str, path.rglob("*.py"))) if path.is_dir() else [str(path)]
    return files


def code_digest(files):
    """sha256 of the files' contents. Rules pass it as a param, not the files as inputs: a code
    edit changes it and Snakemake's params trigger reruns the jobs (a checkout that only
    touches files does not), and the DAG stays small -- thousands of file inputs made building
    it take seconds. smk2dvc reads ``CODE`` for DVC's dependencies."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


# The job side of the workflow package (catalog.py is read by the DAG only).
JOBS = ("workflow/__init__.py", "workflow/layout.py", "workflow/stages.py")
CODE_DATA = code("data", "features", "models", "run_names.py", "runtime.py", "io.py",
                 *JOBS)  # fmt: skip
CODE_TRAIN = code("data", "models", "methods", "training", "metrics.py", "run_names.py",
                  "runtime.py", "io.py", *JOBS)  # fmt: skip
CODE_EVALUATE = CODE_TRAIN + code("evaluation")
CODE_REPORT = code("report", "data/synthetic.py")
# Per rule: the code its jobs run (library + script; smk2dvc reads it for DVC's deps), and the
# digest Snakemake compares (a param: an edit reruns the rule's jobs).
CODE = {
    "extract_raw": CODE_DATA + ["workflow/scripts/extract_raw.py"],
    "make_dataset": CODE_DATA + ["workflow/scripts/make_dataset.py"],
    "train_model": CODE_TRAIN + ["workflow/scripts/train_model.py"],
    "evaluate_runs": CODE_EVALUATE + ["workflow/scripts/evaluate_runs.py"],
    # tracking.py (and tracking_server.py) are left out of train_model's code on purpose: the
    # training job imports them for live logging, which changes no result.
    "track_runs": code("tracking.py", "tracking_server.py")
    + ["workflow/scripts/track_runs.py"],
    "build_report": CODE_REPORT + ["workflow/scripts/build_report.py"],
}
CODE_DIGEST = {rule: code_digest(files) for rule, files in CODE.items()}


def package_paths(files):
    """The files as their sub-package folders (``src/mcr/methods/mcr.py`` -> ``src/mcr/methods``):
    what DVC tracks, and the short form the training job fingerprints its code from."""
    paths = [
        "/".join(Path(f).parts[:3]) if len(Path(f).parts) > 3 else str(f) for f in files
    ]
    return list(dict.fromkeys(paths))


TRAIN_CODE_PATHS = " ".join(package_paths(CODE["train_model"]))


def init_tracking():
    """Create the MLflow database once, before parallel jobs would race to create it; with a
    tracking server (MLFLOW_TRACKING_URI=http://...), check once that it answers."""
    uri = tracking_uri(Path.cwd())
    if problem := server_problem(uri):
        raise WorkflowError(
            f"{problem}: start it (mcr tracking-server start, README) or unset "
            "MLFLOW_TRACKING_URI to track into mlflow.db"
        )
    init_store(uri)
