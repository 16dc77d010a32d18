"""The workflow on a real SLURM cluster (one node, on this machine), tracked live in a real
MLflow tracking server: ``workflow/profiles/slurm`` exactly as a user runs it.

``.ci/local_slurm.sh`` installs Debian's SLURM packages and starts munged, slurmctld and slurmd;
``mcr.tracking_server`` starts the server. The tiny workflow (two imbalance levels, one seed,
two epochs) runs first up to training (the runs are on the server, epoch by epoch, while nothing
has tracked them yet), then to the end (the tracking step completes those same runs). A second
run is retrained with the server killed mid-training: training goes on, the tracking step
fails, and once the server is back a rerun logs what was missing -- every epoch exactly once.
Every daemon started here is stopped by PID, also on failure. Needs root and Debian packages:
skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from mcr import tracking_server
from mcr.tracking_server import free_port, rest
from tests.integration.test_pipeline import BIN, ENV, ROOT, copy_project

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("apt-get") is None,
    reason="a local SLURM cluster needs root and apt-get (Debian) to install and start it",
)
LEVELS = ("synthetic_r0", "synthetic_r4")
TIMEOUT_S = 600  # per snakemake call; the module's hard limit is the sum of its steps


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """munged (if none runs), slurmctld and slurmd on localhost; stopped by PID afterwards."""
    state = tmp_path_factory.mktemp("slurm")
    script = str(ROOT / ".ci/local_slurm.sh")
    tic = time.monotonic()
    up = subprocess.run([script, "up", str(state)], capture_output=True, text=True,
                        timeout=300, check=False)  # fmt: skip
    try:
        if up.returncode == 3:
            pytest.skip(f"no local SLURM cluster here: {up.stderr.strip()}")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        setup_s = time.monotonic() - tic
        yield {"env": {**ENV, "SLURM_CONF": str(state / "slurm.conf")}, "setup_s": setup_s}
    finally:
        started = {p.name: int(p.read_text()) for p in state.glob("started.*")}
        down = subprocess.run([script, "down", str(state)], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert down.returncode == 0, down.stderr[-2000:]
        left = [name for name, pid in started.items() if tracking_server.alive(pid)]
        assert not left, f"daemons left running: {left}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("slurm_project"))
    write_overlay(root, epochs=2)
    return root


def write_overlay(root: Path, epochs: int) -> None:
    real = ("avdigits", "avdigits_mnv2", "mfeat2", "mfeat3")
    overlay = {
        "data": {"synthetic": {"num_samples": 300},
                 "sweep": {"u1_to_s_ratio": [0, 4], "paper_regime": []},
                 "real": {name: {"enabled": False} for name in real}},
        "train": {"seeds": [0], "common": {"epochs": epochs, "batch_size": 32}},
    }  # fmt: skip
    (root / "tiny.yaml").write_text(yaml.safe_dump(overlay))


def snakemake(project: Path, env: dict, *targets: str) -> subprocess.CompletedProcess:
    """The README's cluster command (plus this test's overlay), under a hard timeout."""
    command = [
        "timeout", "-k", "10", str(TIMEOUT_S), str(BIN / "snakemake"),
        "--workflow-profile", "workflow/profiles/slurm", "--configfile", "tiny.yaml",
        "--slurm-init-seconds-before-status-checks", "1", *targets,
    ]  # fmt: skip
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S + 30, check=False)  # fmt: skip


def server_runs(uri: str) -> dict[str, dict]:
    """``mcr.run`` tag -> the active run of that cell, over HTTP as any node sees it."""
    experiments = rest(uri, "experiments/search", {"max_results": 100})["experiments"]
    ids = [e["experiment_id"] for e in experiments if e["name"] in LEVELS]
    runs = rest(uri, "runs/search", {"experiment_ids": ids, "max_results": 1000}).get("runs", [])
    return {{t["key"]: t["value"] for t in r["data"]["tags"]}["mcr.run"]: r for r in runs}


def steps(uri: str, run_id: str, key: str) -> list[int]:
    history = rest(uri, "metrics/get-history", run_id=run_id, metric_key=key, max_results=1000)
    return sorted(m["step"] for m in history.get("metrics", []))


def live_ids(project: Path) -> dict[str, str]:
    """``mcr.run`` tag -> the run id each training job recorded (mlflow_run.json)."""
    ids = {}
    for path in project.glob("data/runs/*/*/seed0/mlflow_run.json"):
        dataset, method = path.parts[-4], path.parts[-3]
        ids[f"{dataset}/{method}/seed0"] = json.loads(path.read_text())["run_id"]
    return ids


def test_the_workflow_runs_on_slurm_and_tracks_live(cluster, project, capsys) -> None:
    env = {**cluster["env"]}
    tic = time.monotonic()
    state = tracking_server.start(port=free_port(), root=project)
    env["MLFLOW_TRACKING_URI"] = state.uri
    try:
        # 1. up to training: every trained run is on the server, epoch by epoch, still running
        training = [f"data/runs/{d}/mcr/seed0/train_summary.json" for d in LEVELS]
        done = snakemake(project, env, *training)
        assert done.returncode == 0, done.stderr[-5000:]
        log = done.stderr
        before = server_runs(state.uri)
        live = live_ids(project)
        assert "synthetic_r0/mcr/seed0" in live and "synthetic_r4/joint/seed0" in live
        for cell, run_id in live.items():
            assert before[cell]["info"]["run_id"] == run_id
            assert before[cell]["info"]["status"] == "RUNNING"
            assert steps(state.uri, run_id, "epoch/val_accuracy") == [0, 1], cell
        # 2. to the end: report, SLURM job ids in the log, the live runs completed in place
        done = snakemake(project, env)
        assert done.returncode == 0, done.stderr[-5000:]
        assert (project / "reports/summary.md").stat().st_size > 0
        assert (project / "reports/figures/imbalance_sweep.png").stat().st_size > 0
        # 2 make_dataset + 2 training jobs, then 2 evaluate+track groups and the report
        submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.",
                               log + done.stderr)  # fmt: skip
        assert len({job for job, _ in submitted}) == 7
        assert all(Path(path).is_file() for _, path in submitted)
        workflow_s = time.monotonic() - tic
        after = server_runs(state.uri)
        results = (project / "reports/results.csv").read_text().splitlines()
        assert len(after) == (len(results) - 1) // 2  # one run per (dataset, method) x 1 seed
        for cell, run_id in live.items():
            assert after[cell]["info"]["run_id"] == run_id
            assert after[cell]["info"]["status"] == "FINISHED"
            assert steps(state.uri, run_id, "epoch/train_loss") == [0, 1], cell  # not twice
        # 3. a second run of one level, retrained, with the server killed mid-training
        write_overlay(project, epochs=4)
        target = "data/tracking/synthetic_r0.json"
        killed = threading.Event()

        def kill_once_a_new_run_logs() -> None:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                new = set(live_ids(project).values()) - set(live.values())
                if new and any(steps(state.uri, i, "epoch/train_loss") for i in new):
                    tracking_server.stop(root=project)
                    killed.set()
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=kill_once_a_new_run_logs, daemon=True)
        watcher.start()
        done = snakemake(project, env, target)
        watcher.join(timeout=30)
        assert killed.is_set(), "the server was never killed mid-run"
        assert done.returncode != 0  # the tracking step refuses to run without its server
        assert "start the tracking server" in (project / "logs/track_runs/synthetic_r0.log"
                                               ).read_text()  # fmt: skip
        # training went on: every result file is complete
        for history in (project / "data/runs/synthetic_r0").glob("*/seed0/history.csv"):
            rows = history.read_text().splitlines()
            assert len(rows) in (2, 5), history  # the ensemble: one row; others: 4 epochs
        state = tracking_server.start(port=int(state.uri.rsplit(":", 1)[1]), root=project)
        done = snakemake(project, env, target)
        assert done.returncode == 0, done.stderr[-5000:]
        # every run of the level is a new one with every epoch once: those whose start reached
        # the server were completed in place, the others (started during the outage) were
        # logged whole by the tracking step
        final = server_runs(state.uri)
        cells = [c for c in live if c.startswith("synthetic_r0/")]  # trained ones (no ensemble)
        recorded = live_ids(project)
        assert any(recorded[c] != live[c] for c in cells if c in recorded)  # one started live
        for cell in cells:
            run = final[cell]["info"]
            assert run["run_id"] != live[cell] and run["status"] == "FINISHED", cell
            if cell in recorded:
                assert run["run_id"] == recorded[cell], cell
            for key in ("epoch/train_loss", "epoch/val_accuracy"):
                assert steps(state.uri, run["run_id"], key) == [0, 1, 2, 3], (cell, key)
    finally:
        if tracking_server.read_state(project / tracking_server.STATE_FILE) is not None:
            tracking_server.stop(root=project)
    assert not tracking_server.alive(state.pid)
    with capsys.disabled():  # in CI's output: the evidence, whatever pytest's verbosity
        jobs = ", ".join(job for job, _ in submitted)
        print(f"\nlocal SLURM: cluster up in {cluster['setup_s']:.1f} s; tiny workflow in "
              f"{workflow_s:.0f} s as SLURM jobs {jobs}; live runs {len(live)}, every epoch "
              "on the server before tracking; server killed mid-run and nothing lost")  # fmt: skip
