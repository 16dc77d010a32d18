"""A new method is its module plus one registration line: nothing else is edited by hand.

In a copy of the project, a throwaway method is written and registered; then ``mcr train``,
``mcr params``, the params schema, the Snakemake DAG and the generated ``dvc.yaml`` all know it,
and the only files that differ from the original are those two and the generated ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

THROWAWAY = '''"""Throwaway: joint training with the fused loss scaled (a test of adding a method)."""

from __future__ import annotations

from dataclasses import dataclass

from mcr.config import param
from mcr.methods.base import Losses, Method
from mcr.methods.registry import METHODS


@dataclass(frozen=True)
class ThrowawayConfig:
    scale: float = param(1.0, "multiplies the fused task loss", source="this test", gt=0)


@METHODS.register("throwaway")
class ThrowawayMethod(Method):
    """Joint training with the fused task loss times ``scale``."""

    Config = ThrowawayConfig
    min_modalities = 2
    max_modalities = 2

    def loss(self, model, batch, out):
        task = self.task_loss(out.logits, batch.labels)
        return Losses(self.config.scale * task, {"task": task.detach()})
'''
GENERATED = {"workflow/schemas/methods.schema.json", "dvc.yaml"}


def tree_digest(root: Path) -> dict[str, str]:
    skip = {"__pycache__", ".snakemake", "logs"}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("Snakefile", "workflow", "params", "src", "dvc.yaml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    return root


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src"), "PATH": f"{BIN}{os.pathsep}"
           f"{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_a_module_and_one_registration_line_are_all_a_method_needs(copy: Path) -> None:
    before = tree_digest(copy)
    (copy / "src/mcr/methods/throwaway.py").write_text(THROWAWAY)
    init = copy / "src/mcr/methods/__init__.py"
    text = init.read_text()
    assert "    reconboost,\n" in text
    init.write_text(text.replace("    reconboost,\n", "    reconboost,\n    throwaway,\n"))

    shown = run(str(BIN / "mcr"), "params", "throwaway", cwd=copy)
    assert shown.returncode == 0, shown.stderr
    assert (
        "scale: 1.0  # multiplies the fused task loss (default: this test) [> 0]" in shown.stdout
    )

    out = copy / "run"
    trained = run(str(BIN / "mcr"), "train", "--dataset", "synthetic", "--method", "throwaway",
                  "--set", "data.synthetic.num_samples=300", "--set", "train.common.epochs=2",
                  "--set", "train.methods.throwaway.scale=2.0", "--quiet", "--out", str(out),
                  cwd=copy)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (out / "best.pt").is_file()

    # the user lists the method among the runs (an overlay here, so the copy's params stay as
    # they were); the DAG regenerates the stale catalog by itself and plans its jobs
    overlay = copy.parent / "with_throwaway.yaml"
    overlay.write_text("train:\n  methods:\n    throwaway: {scale: 2.0}\n")
    dry = run(str(BIN / "snakemake"), "-n", "-p", "--configfile", "params/data.yaml",
              "params/train.yaml", "params/report.yaml", str(overlay), cwd=copy)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    log = dry.stdout + dry.stderr
    assert "regenerating it now" in log
    # each generated dataset trains its run list in one job: the method joins the run list
    # (the --method arguments) of every dataset it applies to
    run_lists = {
        line.split("--dataset ")[1].split()[0]: line.split("--method ")[1].split(" --")[0].split()
        for line in log.splitlines()
        if "train_model.py --dataset " in line
    }
    assert "throwaway" in run_lists["mfeat2"]
    assert "throwaway" not in run_lists["mfeat3"]  # refuses three modalities
    assert run_lists["mfeat2"].index("throwaway") > run_lists["mfeat2"].index("unimodal_mor")

    checked = run(sys.executable, "workflow/tools/method_schema.py", "--check", cwd=copy)
    assert checked.returncode == 0, checked.stdout  # the DAG left it current
    schema = json.loads((copy / "workflow/schemas/methods.schema.json").read_text())
    block = schema["properties"]["throwaway"]
    assert block["properties"]["scale"]["exclusiveMinimum"] == 0
    assert block["x-mcr"] == {"supported_tasks": ["classification", "regression"],
                              "min_modalities": 2, "max_modalities": 2, "unimodal_runs": False}  # fmt: skip

    edited = {
        path
        for path, digest in tree_digest(copy).items()
        if before.get(path) != digest and not path.startswith("run/")
    }
    assert edited - GENERATED == {"src/mcr/methods/throwaway.py", "src/mcr/methods/__init__.py"}
    added = [line for line in init.read_text().splitlines() if line not in text.splitlines()]
    assert added == ["    throwaway,"]
