"""Write ``dvc.yaml`` from the Snakemake DAG, so the pipeline is defined once (in Snakemake).

    python workflow/tools/smk2dvc.py            # (re)write dvc.yaml
    python workflow/tools/smk2dvc.py --check    # exit 1 if dvc.yaml is stale (CI)

One DVC stage per Snakemake rule x dataset x method (the seeds of a method are one stage), named
``<rule>-<wildcard values>`` (e.g. ``train_model-synthetic_r4-mcr``), so ``dvc repro <stage>``
reruns one slice. A stage's ``cmd``
is the job's shell command (the project interpreter written as ``python``, the log redirect
dropped), its ``deps`` are the job's inputs (data and code), its ``params`` are the keys the rule
declares under ``params: tracked`` (``train.methods.mcr`` -> ``params/train.yaml``), and its
outputs are ``outs`` -- except ``metrics.json`` files (DVC metrics) and ``reports/`` (small,
kept in git: ``cache: false``). Reads the DAG through a private Snakemake API (pinned version).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

HEADER = "# Generated from the Snakemake DAG by workflow/tools/smk2dvc.py -- do not edit.\n"
REDIRECT = re.compile(r"\s*>\s*logs/\S+\s+2>&1\s*$")


def dag_jobs(snakefile: Path) -> list:
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile)
        workflow.dag(dag_settings=DAGSettings(targets={"all"}, forceall=True))
        inner = workflow._workflow  # private API: snakemake is pinned in requirements.lock
        inner._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        inner._build_dag()
        return [job for job in inner.dag.jobs if job.output]


def collapse(path: str) -> str:
    """A library file -> its sub-package folder (``src/mcr/methods/mcr.py`` -> ``src/mcr/methods``).

    DVC hashes a folder dependency as one entry, so 172 stages stay fast to check; a code edit
    still reruns every stage that imports the package.
    """
    parts = Path(path).parts
    if parts[:2] == ("src", "mcr") and len(parts) > 3:
        return str(Path(*parts[:3]))
    return path


def stage(job) -> dict:
    cmd = REDIRECT.sub("", job.shellcmd.strip()).replace(sys.executable, "python")
    deps = sorted({collapse(str(f)) for f in job.input})
    spec: dict = {"cmd": " ".join(cmd.split()), "deps": deps}
    if "tracked" in job.params.keys():  # noqa: SIM118 -- Namedlist: `in` tests values
        by_file: dict[str, list[str]] = {}
        for key in job.params.tracked:
            by_file.setdefault(f"params/{key.split('.')[0]}.yaml", []).append(key)
        spec["params"] = [{f: sorted(keys)} for f, keys in sorted(by_file.items())]
    for out in map(str, job.output):
        if out.startswith("reports/"):
            spec.setdefault("outs", []).append({out: {"cache": False}})
        elif out.endswith("metrics.json"):
            spec.setdefault("metrics", []).append(out)
        else:
            spec.setdefault("outs", []).append(out)
    return spec


def merge(specs: list[dict]) -> dict:
    """One DVC stage for several jobs (the seeds of one method): commands chained, lists joined."""
    merged: dict = {
        "cmd": " && ".join(s["cmd"] for s in specs) if len(specs) > 1 else specs[0]["cmd"]
    }
    for key in ("deps", "params", "outs", "metrics"):
        items = [item for s in specs for item in s.get(key, [])]
        if key == "params":
            by_file: dict[str, set[str]] = {}
            for entry in items:
                for file, keys in entry.items():
                    by_file.setdefault(file, set()).update(keys)
            items = [{f: sorted(k)} for f, k in sorted(by_file.items())]
        elif key == "deps":
            items = sorted(set(items))
        if items:
            merged[key] = items
    return merged


def render(snakefile: Path) -> str:
    """Stages named ``<rule>-<wildcards but seed>``: the seeds of a method form one stage, so
    ``dvc repro train_model-synthetic_r4-mcr`` reruns one method on one dataset."""
    groups: dict[str, list[dict]] = {}
    for job in sorted(dag_jobs(snakefile), key=lambda j: str(j.output[0])):
        values = [str(v) for k, v in dict(job.wildcards).items() if k != "seed"]
        groups.setdefault("-".join([job.rule.name, *values]), []).append(stage(job))
    stages = {name: merge(specs) for name, specs in sorted(groups.items())}
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=100)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if dvc.yaml is stale")
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--out", type=Path, default=Path("dvc.yaml"))
    args = parser.parse_args()
    text = render(args.snakefile)
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is STALE: run python workflow/tools/smk2dvc.py and commit it")
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
