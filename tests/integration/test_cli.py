"""The ``mcr`` console script, as a user runs it (a real subprocess, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARAMS = ["--params", str(REPO / "params/data.yaml"), "--params", str(REPO / "params/train.yaml")]
SHRINK = ["--set", "data.synthetic.num_samples=600", "--set", "train.common.epochs=2", "--quiet"]


def mcr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcr.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = mcr("--help")
    assert result.returncode == 0
    assert all(c in result.stdout for c in ("train", "evaluate", "list"))


def test_train_then_evaluate_synthetic(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for modality in ("m1", "m2"):
        done = mcr("train", "--dataset", "synthetic", "--method", f"unimodal_{modality}",
                   *PARAMS, *SHRINK, "--out", str(runs / modality))  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = mcr("train", "--dataset", "synthetic", "--method", "mcr", "--seed", "1", *PARAMS,
               *SHRINK, "--set", "train.methods.mcr.init_from_unimodal=true",
               "--unimodal", f"m1={runs / 'm1'}", "--unimodal", f"m2={runs / 'm2'}",
               "--out", str(runs / "mcr"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mcr seed 1: best epoch" in done.stdout
    assert {"best.pt", "last.pt", "history.csv", "train_summary.json", "run.json"} <= {
        p.name for p in (runs / "mcr").iterdir()
    }
    done = mcr("evaluate", "--run", str(runs / "mcr"),
               "--reference", f"m1={runs / 'm1'}", "--reference", f"m2={runs / 'm2'}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((runs / "mcr" / "metrics.json").read_text())
    assert metrics["method"] == "mcr" and metrics["seed"] == 1
    assert metrics["test"]["error_analysis"]["reference"] == "unimodal_runs"
    assert 0.2 < metrics["test"]["accuracy"] <= 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nope", "--method", "mcr"], "dataset 'nope' is neither a registered name"),
        (["--dataset", "synthetic", "--method", "mrc"], "unknown method 'mrc'; valid names:"),
        (["--dataset", "synthetic", "--method", "mcr", "--set", "train.common.lr=abc"],
         "train.common.lr: expected a number, got 'abc'"),
        (["--dataset", "synthetic", "--method", "mcr", "--set", "train.methods.mcr.gamee=x"],
         "methods.mcr.gamee: unknown key"),
        (["--dataset", "synthetic", "--method", "ensemble"], "pass a unimodal run for m1, m2"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(args, message, tmp_path: Path) -> None:
    done = mcr("train", *args, "--set", "data.synthetic.num_samples=300",
               "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_bring_your_own_dataset_folder(tmp_path: Path) -> None:
    from mcr.data.contract import write_dataset
    from mcr.data.synthetic import SyntheticConfig, generate

    folder = tmp_path / "my_set"
    write_dataset(generate(SyntheticConfig(num_samples=400, num_modalities=3)), folder)
    done = mcr("train", "--dataset", str(folder), "--method", "mcr", *PARAMS, *SHRINK,
               "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = mcr("evaluate", "--run", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["test"]["modalities"]) == {"m1", "m2", "m3"}
    bad = folder / "val.parquet"
    bad.write_bytes(b"not parquet")
    done = mcr(
        "train", "--dataset", str(folder), "--method", "joint", "--out", str(tmp_path / "x")
    )
    assert done.returncode == 2 and "val.parquet" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", "train.common.device=gpu"],
         "train.common: device='gpu': expected one of auto, cpu, cuda, cuda:N"),
        (["--set", "train.common.lr=1e-3", "--set", "trian.common.epochs=3"],
         "--set trian.common.epochs: unknown top-level key 'trian' (expected data, train, report, tracking)"),
        (["--set", "train.common.epochs=0"], "train.common: epochs=0: expected >= 1"),
        (["--set", "train.methods.mcr.gam=1"], "train.methods.mcr.gam: unknown key"),
    ],
)  # fmt: skip
def test_bad_params_get_one_line_before_anything_is_written(args, message, tmp_path) -> None:
    out = tmp_path / "run"
    result = mcr("train", "--dataset", "synthetic", "--method", "joint", *SHRINK, *args,
                 "--out", str(out))  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith(f"mcr train: error: {message}")
    assert not out.exists()  # nothing written


def test_out_must_be_a_writable_folder_and_is_checked_before_training(tmp_path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, message in [
        (a_file, f"--out {a_file}: exists and is not a folder"),
        (a_file / "run", f"--out {a_file / 'run'}: not a writable folder (Not a directory)"),
    ]:
        result = mcr("train", "--dataset", "synthetic", "--method", "joint", *SHRINK,
                     "--out", str(out))  # fmt: skip
        assert result.returncode == 2 and result.stderr.strip() == f"mcr train: error: {message}"


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="this machine has a CUDA device"
)
def test_a_device_this_machine_lacks_is_one_line(tmp_path) -> None:
    result = mcr("train", "--dataset", "synthetic", "--method", "joint", *SHRINK,
                 "--set", "train.common.device=cuda", "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mcr train: error: device 'cuda' requested but torch sees no CUDA device"
    )
