"""./run.sh after a hard kill: a stale Snakemake lock is removed and the run resumes; a live run
in the same checkout is never unlocked under it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_pipeline import BIN, ENV, ROOT

#: A workflow whose one job takes long enough to be killed while Snakemake holds its lock.
SNAKEFILE = """
rule all:
    output:
        "done.txt",
    shell:
        "sleep 60 && touch {output}"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """run.sh, the workflow profiles and a one-job Snakefile; .venv is the test's own."""
    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "workflow/profiles", tmp_path / "workflow/profiles")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    return tmp_path


def run_sh(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "run.sh", *args], cwd=checkout, env=ENV, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def wait_for_lock(checkout: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        locks = checkout / ".snakemake/locks"
        if locks.is_dir() and any(locks.iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError("Snakemake never took its lock")


def test_a_live_run_is_refused_and_a_killed_one_is_unlocked_and_resumed(checkout: Path) -> None:
    live = subprocess.Popen(
        [sys.executable, str(BIN / "snakemake"), "--cores", "1"], cwd=checkout, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_lock(checkout)
        refused = run_sh(checkout, "quick", "-n")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"another Snakemake run is working in this checkout (PID {live.pid})" in (
            refused.stderr
        )
        assert any((checkout / ".snakemake/locks").iterdir())  # its lock was left alone
    finally:
        os.killpg(live.pid, signal.SIGKILL)  # as the OOM killer or a power cut would
        live.wait(timeout=30)
    assert any((checkout / ".snakemake/locks").iterdir())  # the kill left the lock behind
    resumed = run_sh(checkout, "quick", "-n")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "found the lock of a run that was killed" in resumed.stdout
    assert "rule all" in resumed.stdout + resumed.stderr  # the job is still to be done
    assert not any((checkout / ".snakemake/locks").iterdir())
    again = run_sh(checkout, "quick", "-n")  # nothing stale now: no message
    assert again.returncode == 0 and "found the lock" not in again.stdout


def test_a_malformed_configfile_is_named_with_its_line(checkout: Path) -> None:
    bad = checkout / "mine.yaml"
    bad.write_text("train:\n  common: {lr: [unclosed\n")
    done = run_sh(checkout, "quick", "-n", "--configfile", str(bad))
    assert done.returncode != 0
    assert f"error: {bad}: not valid YAML at line 3, column 1" in done.stderr
