"""``mcr``: train and evaluate runs from the command line, without Snakemake.

    mcr train --dataset synthetic --method mcr --seed 0 --params params/data.yaml \\
        --params params/train.yaml --out data/runs/synthetic/mcr/seed0
    mcr evaluate --run data/runs/synthetic/mcr/seed0 --out data/runs/synthetic/mcr/seed0/metrics.json
    mcr list
    mcr params mcr          # a method's full params block, every key at its default, commented
    mcr tracking-server start --host 0.0.0.0 --port 5000   # the MLflow server of a cluster run
    mcr tracking-server stop

Bad input (params, dataset folder, method name) ends with one ``error:`` line and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mcr.config import (
    ConfigError,
    check_sections,
    deep_merge,
    load_params,
    parse_yaml,
    yaml_problem,
)
from mcr.registry import UnknownNameError
from mcr.tracking_server import TrackingServerError

RUN_FILE = "run.json"  # how a run was made: dataset source, method, seed, params


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _override(params: dict[str, Any], assignments: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` (value parsed as YAML, ``1e-3`` a number) to the merged
    params; a first key that is not a params section is refused."""
    for dotted, raw in assignments:
        try:
            nested: dict[str, Any] = parse_yaml(raw) if raw else None  # type: ignore[assignment]
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {dotted}={raw}: {yaml_problem(exc)}") from None
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        check_sections(nested, f"--set {dotted}")
        params = deep_merge(params, nested)
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcr",
        description="MCR and the multimodal balancing baselines: train and evaluate runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one method on one dataset with one seed")
    train.add_argument("--dataset", required=True,
                       help="registered name (e.g. synthetic) or a folder with train/val/test.parquet")  # fmt: skip
    train.add_argument(
        "--method", required=True, help="e.g. mcr, joint, unimodal_m1 (see mcr list)"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--params", action="append", default=[], type=Path,
                       help="params YAML file; repeat to merge several (later files win)")  # fmt: skip
    train.add_argument("--set", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                       help="override one params key, e.g. train.common.epochs=5")  # fmt: skip
    train.add_argument("--unimodal", action="append", default=[], type=_key_value,
                       metavar="MODALITY=RUN_DIR",
                       help="trained unimodal run, for ensemble / uni_pre_* / mcr with init")  # fmt: skip
    train.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, history)")
    train.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = sub.add_parser("evaluate", help="evaluate a finished run on val and test")
    evaluate.add_argument("--run", required=True, type=Path, help="run folder written by train")
    evaluate.add_argument("--dataset", help="default: the dataset the run was trained on")
    evaluate.add_argument("--params", action="append", default=[], type=Path,
                          help="params for a registered dataset (default: the run's own)")  # fmt: skip
    evaluate.add_argument("--reference", action="append", default=[], type=_key_value,
                          metavar="MODALITY=RUN_DIR",
                          help="unimodal runs for the error analysis (default: unimodal heads)")  # fmt: skip
    evaluate.add_argument("--out", type=Path, help="metrics JSON (default: RUN/metrics.json)")
    evaluate.add_argument("--allow-unfinished", action="store_true",
                          help="evaluate a run that has not finished training (the metrics say "
                               "so); refused by default")  # fmt: skip

    sub.add_parser("list", help="list registered datasets, encoders and methods")

    params = sub.add_parser(
        "params", help="print methods' full params blocks (defaults, descriptions, sources)"
    )
    params.add_argument("methods", nargs="*", help="registry names (default: every method)")

    server = sub.add_parser(
        "tracking-server", help="start / stop / check the MLflow server cluster jobs log to"
    )
    server.add_argument("action", choices=("start", "stop", "status"))
    server.add_argument("--host", default="127.0.0.1",
                        help="interface to bind; 0.0.0.0 lets other nodes connect")  # fmt: skip
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--backend-store-uri",
                        help="default: sqlite mlflow.db in the checkout; a database URI "
                             "(postgresql://...) for a real deployment")  # fmt: skip
    server.add_argument("--artifacts-destination", type=Path,
                        help="where the server keeps artifacts (default: mlartifacts/)")  # fmt: skip
    return parser


def writable_folder(path: Path, flag: str) -> None:
    """Make sure ``path`` is (or can become) a folder this process can write to, before any
    training starts: a read-only run folder used to fail only after the first epoch."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: not a writable folder ({exc.strerror})") from None


def cmd_train(args: argparse.Namespace) -> None:
    from mcr.features import load_dataset
    from mcr.training import RunConfig, train_run

    params = _override(load_params(*args.params), args.set)
    config = RunConfig.from_params(params)  # bad params fail before anything is written
    writable_folder(args.out, "--out")
    dataset = load_dataset(args.dataset, params.get("data"))
    result = train_run(
        dataset, args.method, config, args.seed, args.out,
        unimodal_runs=dict(args.unimodal), resume=not args.no_resume,
        progress=False if args.quiet else None,
    )  # fmt: skip
    run_record = {"dataset": args.dataset, "method": args.method, "seed": args.seed,
                  "params": params, "unimodal": dict(args.unimodal)}  # fmt: skip
    (args.out / RUN_FILE).write_text(json.dumps(run_record, indent=2) + "\n")
    best = ", ".join(f"{k} {v:.4f}" for k, v in result.best_val.items())
    print(f"{args.method} seed {args.seed}: best epoch {result.best_epoch} ({best}) -> {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mcr.evaluation import evaluate_run
    from mcr.features import load_dataset

    record_path = args.run / RUN_FILE
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    source = args.dataset or record.get("dataset")
    if source is None:
        raise ConfigError(f"{record_path} not found: pass --dataset")
    params = load_params(*args.params) if args.params else record.get("params", {})
    dataset = load_dataset(source, params.get("data"))
    out = args.out or args.run / "metrics.json"
    result = evaluate_run(
        args.run, dataset, reference_runs=dict(args.reference), out_path=out,
        allow_unfinished=args.allow_unfinished,
    )  # fmt: skip
    test = result["test"]
    headline = test.get("accuracy", test.get("mae"))
    print(f"{result['method']} seed {result['seed']}: test {headline:.4f} -> {out}")


def cmd_list(_: argparse.Namespace) -> None:
    from mcr.data import DATASETS
    from mcr.methods import METHODS
    from mcr.models import ENCODERS

    for title, registry in (("datasets", DATASETS), ("encoders", ENCODERS), ("methods", METHODS)):
        print(f"{title}: {', '.join(registry.names())}")
    print("(unimodal runs are named unimodal_<modality>)")


def cmd_params(args: argparse.Namespace) -> None:
    """Print the commented blocks; paste one under ``train.methods`` and keep the keys you
    change (a block lists only those; the rest take the declared defaults)."""
    from mcr.methods import METHODS
    from mcr.methods.declaration import params_block

    names = args.methods or METHODS.names()
    for name in names:
        METHODS.get(name)  # an unknown name fails with the valid ones
    print("\n".join(params_block(name) for name in names), end="")


def cmd_tracking_server(args: argparse.Namespace) -> None:
    from mcr import tracking_server as ts

    if args.action == "start":
        state = ts.start(args.host, args.port, args.backend_store_uri, args.artifacts_destination)
        print(f"tracking server PID {state.pid} ({state.backend_store_uri}), log {state.log_file}")
        print(f"browse: {state.uri}/#/experiments?workflowType=machine_learning")
        print("every job (and this shell, for `snakemake`) must use:")
        print(f"export MLFLOW_TRACKING_URI={state.uri}")
    elif args.action == "stop":
        print(f"stopped the tracking server (PID {ts.stop()})")
    else:
        state = ts.read_state()
        if state is None or not ts.alive(state.pid):
            raise ts.TrackingServerError("no tracking server started here is running")
        problem = ts.reachable(state.uri)
        print(f"PID {state.pid}: {problem or 'answering'} at {state.uri}")
        if problem:
            raise ts.TrackingServerError(problem)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "train": cmd_train, "evaluate": cmd_evaluate, "list": cmd_list, "params": cmd_params,
        "tracking-server": cmd_tracking_server,
    }  # fmt: skip
    try:
        commands[args.command](args)
    except (ConfigError, UnknownNameError, ValueError, TrackingServerError) as exc:
        print(f"mcr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, not a directory, disk full, ...: name the path
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)  # ours (CheckpointWriteError) carry the whole line
        print(f"mcr {args.command}: error: {where}{reason}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
