"""Where a pipeline run's time went: CPU-seconds per rule and dataset, from Snakemake benchmarks.

The default run's target is <= 20 minutes on 2 CPU cores (README, Quickstart). Every compute
rule writes ``logs/benchmarks/<rule>/<wildcards>.tsv`` (wall seconds and CPU time of the job);
this script sums them per rule and dataset, names the costliest jobs, and prints the lower bound
``sum of job seconds / cores`` next to the wall time Snakemake logged for the last run, so the
gap (scheduling, dependencies, idle cores at the end) is visible too.

Usage: ``python benchmarks/pipeline_time.py [--root .] [--cores 2] [--top 5]`` after a run.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path


def job_seconds(root: Path) -> dict[tuple[str, str, str], float]:
    """``(rule, dataset or source, job name) -> wall seconds`` of every benchmarked job."""
    jobs = {}
    for path in sorted((root / "logs/benchmarks").rglob("*.tsv")):
        parts = path.relative_to(root / "logs/benchmarks").with_suffix("").parts
        rule, group, name = parts[0], parts[1], parts[-1]  # per-dataset rules: name == group
        with path.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            jobs[rule, group, name] = float(rows[-1]["s"])
    return jobs


def last_elapsed(root: Path) -> str | None:
    """The ``Elapsed time`` of the newest Snakemake log, if it finished."""
    logs = sorted((root / ".snakemake/log").glob("*.snakemake.log"))
    for log in reversed(logs):
        found = re.search(r"Elapsed time: (\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    jobs = job_seconds(args.root)
    if not jobs:
        raise SystemExit(f"no job benchmarks under {args.root / 'logs/benchmarks'}: run first")
    by_group: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (rule, group, _), seconds in jobs.items():
        by_group[rule, group].append(seconds)
    print(f"{'rule':<14} {'dataset':<16} {'jobs':>5} {'sum s':>8} {'mean s':>7} {'max s':>7}")
    for (rule, group), values in sorted(by_group.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"{rule:<14} {group:<16} {len(values):>5} {sum(values):>8.1f} "
            f"{sum(values) / len(values):>7.1f} {max(values):>7.1f}"
        )
    by_rule: dict[str, float] = defaultdict(float)
    for (rule, _, _), seconds in jobs.items():
        by_rule[rule] += seconds
    print(
        "\nper rule: "
        + ", ".join(f"{r} {v:.0f} s" for r, v in sorted(by_rule.items(), key=lambda kv: -kv[1]))
    )
    total = sum(jobs.values())
    print(f"\n{len(jobs)} jobs, {total:.0f} job-seconds; on {args.cores} cores at best "
          f"{total / args.cores / 60:.1f} min")  # fmt: skip
    print(f"last Snakemake run's wall time: {last_elapsed(args.root) or 'unknown'}")
    print(f"\ncostliest {args.top} jobs:")
    for (rule, group, name), seconds in sorted(jobs.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {seconds:7.1f} s  {rule} {group} {name}")


if __name__ == "__main__":
    main()
