"""Faults a long run meets, injected for real: a hard kill of the whole pipeline mid-epoch, a
full disk while a checkpoint is written, a broken MLflow database. Each ends in one clear message
or a resumed run with identical results, and no result is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.integration.test_pipeline import BIN, ENV, ROOT, copy_project, run

SMALL = ["--set", "data.synthetic.num_samples=600", "--set", "train.common.epochs=1", "--quiet"]


def small_project(root: Path) -> Path:
    """One synthetic level, unimodal + joint + MCR-pre (which starts from the unimodal runs),
    one seed, 30 short epochs with a checkpoint after each: a run to kill mid-epoch."""
    root.mkdir(parents=True)
    copy_project(root)
    for stem, edit in {
        "data": lambda d: (
            d["data"]["synthetic"].update(num_samples=300)
            or d["data"]["sweep"].update(u1_to_s_ratio=[4], paper_regime=[])
            or d["data"].update(real={})
        ),
        "train": lambda d: (
            d["train"].update(seeds=[0], variants={})
            or d["train"]["common"].update(
                epochs=30, batch_size=32, patience=0, checkpoint_every_s=0
            )
            or d["train"].update(methods={"unimodal": {}, "joint": {}, "mcr_pre": {}})
        ),
    }.items():
        path = root / f"params/{stem}.yaml"
        content = yaml.safe_load(path.read_text())
        edit(content)
        path.write_text(yaml.safe_dump(content, sort_keys=False))
    (root / "workflow/profiles/quick/params.yaml").write_text("{}\n")  # the params as they are
    (root / "run.sh").write_bytes((ROOT / "run.sh").read_bytes())
    (root / ".venv").symlink_to(BIN.parent)
    return root


def quick(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run(str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/quick", *args,
               cwd=root)  # fmt: skip


def test_a_hard_kill_mid_epoch_resumes_to_identical_results(tmp_path: Path) -> None:
    straight = small_project(tmp_path / "straight")
    done = quick(straight, "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]

    killed = small_project(tmp_path / "killed")
    pipeline = subprocess.Popen(
        [sys.executable, str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/quick",
         "--cores", "2"], cwd=killed, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    last = killed / "data/runs/synthetic_r4/joint/seed0/last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and pipeline.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(pipeline.pid, signal.SIGKILL)  # the whole process group, as an OOM killer would
    pipeline.wait(timeout=30)
    assert last.exists(), "the pipeline ended before joint training started"
    assert not (killed / "reports/results.csv").exists()  # killed mid-run
    progress = json.dumps(
        __import__("torch").load(last, weights_only=True)["progress"]["finished"]
    )
    assert progress == "false"  # mid-run: joint had not finished

    resumed = subprocess.run(
        ["bash", "run.sh", "quick", "--cores", "2"], cwd=killed, env=ENV, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "found the lock of a run that was killed" in resumed.stdout
    for name in ("results.csv", "summary.md"):
        assert (killed / "reports" / name).read_text() == (straight / "reports" / name).read_text()

    # a features file corrupted after make_dataset: the jobs that read it rerun, and fail with
    # the data contract's message naming the file, never train on it silently
    table = killed / "data/features/synthetic_r4/train.parquet"
    content = bytearray(table.read_bytes())
    content[1000:1200] = bytes(b ^ 0xFF for b in content[1000:1200])
    table.write_bytes(bytes(content))
    plan = quick(killed, "-n", "--quiet", "rules")
    assert "train_dataset_synthetic_r4" in plan.stdout + plan.stderr
    failed = quick(killed, "--cores", "1", "--until", "train_dataset_synthetic_r4")
    assert failed.returncode != 0
    log = (killed / "logs/train_model/synthetic_r4.log").read_text()
    assert "data contract violation(s):\n  - train.parquet: " in log  # unreadable or non-finite


def test_a_full_disk_while_a_checkpoint_is_written_is_one_line_and_keeps_the_last_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    mcr = [sys.executable, "-m", "mcr.cli", "train", "--dataset", "synthetic", "--method",
           "joint", *SMALL, "--out", str(out)]  # fmt: skip
    assert subprocess.run(mcr, capture_output=True, timeout=300, check=False).returncode == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.pt")}
    # 16 KiB per file: enough for history.csv, not for a checkpoint (the write fails midway)
    limited = ["bash", "-c", 'ulimit -f 16; exec "$@"', "limited", *mcr, "--no-resume"]
    done = subprocess.run(limited, capture_output=True, text=True, timeout=300, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"mcr train: error: {out}/best.pt: could not write the checkpoint")
    assert lines[0].endswith(
        "is the disk full or the folder read-only? the previous one is intact"
    )
    assert {p.name: p.read_bytes() for p in out.glob("*.pt")} == before
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))  # no temp file left


def evaluated_run(out: Path) -> Path:
    """A small joint run trained and evaluated with the ``mcr`` CLI, for the tracking faults."""
    mcr = [sys.executable, "-m", "mcr.cli"]
    train = [*mcr, "train", "--dataset", "synthetic", "--method", "joint", *SMALL]
    for command in ([*train, "--out", str(out)], [*mcr, "evaluate", "--run", str(out)]):
        done = subprocess.run(command, capture_output=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_a_corrupt_mlflow_database_warns_and_loses_no_result(tmp_path: Path) -> None:
    """Tracking is best effort: with a garbage mlflow.db the run's result files are complete,
    the tracking record names no run, and the job says why."""
    out = evaluated_run(tmp_path / "runs" / "joint" / "seed0")
    (tmp_path / "mlflow.db").write_bytes(b"this is not an sqlite database" * 100)
    env = {k: v for k, v in ENV.items() if k != "MLFLOW_TRACKING_URI"}
    code = (
        "from mcr.tracking import track_runs; import sys; "
        "print(track_runs('synthetic', [sys.argv[1]], '.', 'tracked.json'))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WARNING: MLflow logging of run joint-seed0 failed" in done.stdout
    assert json.loads((tmp_path / "tracked.json").read_text())["runs"] == {
        "synthetic/joint/seed0": None
    }
    for name in ("best.pt", "last.pt", "history.csv", "train_summary.json", "metrics.json"):
        assert (out / name).stat().st_size > 0, name


def test_a_locked_mlflow_database_warns_after_retries_and_loses_no_result(tmp_path: Path) -> None:
    """Another process holds the database's write lock for the whole job: tracking retries,
    gives up with a warning, and the run's files are untouched."""
    import sqlite3

    out = evaluated_run(tmp_path / "runs" / "joint" / "seed0")
    env = {k: v for k, v in ENV.items() if k != "MLFLOW_TRACKING_URI"}
    init = "from mcr.tracking import init_store, tracking_uri; init_store(tracking_uri('.'))"
    subprocess.run([sys.executable, "-c", init], cwd=tmp_path, env=env, check=True, timeout=300)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # no other connection can write (or read) until released
    try:
        code = (
            "from mcr.tracking import track_runs; import sys; "
            "track_runs('synthetic', [sys.argv[1]], '.', 'tracked.json')"
        )
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WARNING: MLflow logging of run joint-seed0 failed" in done.stdout
    assert "results on disk are intact" in done.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
